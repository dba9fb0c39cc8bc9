package edge

import (
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// send queues a frame without blocking. A client that lets its queue fill
// up is dropped: memory must not grow with a slow reader.
func (c *conn) send(f []byte) {
	if f == nil || c.ctx.Err() != nil {
		return
	}
	if !c.out.push(f) {
		if c.ctx.Err() == nil {
			c.e.m.slow.Inc()
			c.e.opt.Log.Info("dropping slow connection", "user", c.user, "conn", c.origin)
		}
		c.cancel()
		c.close(websocket.ClosePolicyViolation, "too slow")
	}
}

// outbox is a connection's outbound queue. Unlike a buffered channel it
// costs nothing while empty, which is how most connections spend their life.
type outbox struct {
	max  int
	wake chan struct{} // one slot: the writer has something to take

	mu sync.Mutex
	q  [][]byte
}

// push queues f; false means the queue is full.
func (o *outbox) push(f []byte) bool {
	o.mu.Lock()
	if len(o.q) >= o.max {
		o.mu.Unlock()
		return false
	}
	o.q = append(o.q, f)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return true
}

// take empties the queue and returns what it held.
func (o *outbox) take() [][]byte {
	o.mu.Lock()
	q := o.q
	o.q = nil
	o.mu.Unlock()
	return q
}

func (o *outbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.q)
}

// sendPaced queues a frame of a sync replay, waiting while the queue is more
// than half full: a replay may be larger than the queue.
func (c *conn) sendPaced(f []byte) bool {
	for c.out.len() > c.out.max/2 {
		select {
		case <-c.ctx.Done():
			return false
		case <-time.After(2 * time.Millisecond):
		}
	}
	c.send(f)
	return c.ctx.Err() == nil
}
