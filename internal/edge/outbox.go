package edge

import (
	"context"
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
	ok, start := c.out.push(f)
	if !ok {
		if c.ctx.Err() == nil {
			c.e.m.slow.Inc()
			c.e.opt.Log.Info("dropping slow connection", "user", c.user, "conn", c.origin)
		}
		c.cancel()
		c.close(websocket.ClosePolicyViolation, "too slow")
		return
	}
	if start {
		go c.writeOut()
	}
}

// outbox is a connection's outbound queue. Unlike a buffered channel it
// costs nothing while empty, and nothing writes while it is empty either: a
// writer goroutine starts when something is queued and ends once it has
// drained the queue. Most connections spend their life idle, and an idle
// connection's only goroutine is its reader.
type outbox struct {
	max int

	mu      sync.Mutex
	q       [][]byte
	open    bool // the socket is upgraded: writers may run
	writing bool // a writer is draining the queue
	ping    bool // a ping is due
	closing bool // the connection is to close: the writer sends the close frame
	ended   bool // the socket is closed or failed: nothing more is written
	// room is closed when the writer takes the queue; sendPaced waits on
	// it (made only while someone waits).
	room    chan struct{}
	writers sync.WaitGroup
}

// push queues f; ok false means the queue is full, start true that the
// caller must start a writer (writeOut).
func (o *outbox) push(f []byte) (ok, start bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ended {
		return true, false
	}
	if len(o.q) >= o.max {
		return false, false
	}
	o.q = append(o.q, f)
	return true, o.claim()
}

// claim reports whether the caller is to start a writer, and counts it;
// o.mu is held.
func (o *outbox) claim() bool {
	if !o.open || o.writing || o.ended {
		return false
	}
	o.writing = true
	o.writers.Add(1)
	return true
}

// start lets writers run once the socket is there; true: start one now.
func (o *outbox) start() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.open = true
	if len(o.q) == 0 && !o.closing && !o.ping {
		return false
	}
	return o.claim()
}

// shut asks for the close frame; true: start a writer to send it.
func (o *outbox) shut() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closing = true
	return o.claim()
}

// pingDue asks for a ping; true: start a writer to send it. ok false means
// the connection is closing: no more pings.
func (o *outbox) pingDue() (ok, start bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closing || o.ended {
		return false, false
	}
	o.ping = true
	return true, o.claim()
}

// take hands the writer what is due. With nothing due the writer ends
// (more=false); closing means it sends the close frame and ends.
func (o *outbox) take() (frames [][]byte, ping, closing, more bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.room != nil {
		close(o.room)
		o.room = nil
	}
	if o.closing {
		o.q, o.ended = nil, true
		return nil, false, true, true
	}
	if len(o.q) == 0 && !o.ping {
		o.writing = false
		return nil, false, false, false
	}
	frames, ping = o.q, o.ping
	o.q, o.ping = nil, false
	return frames, ping, false, true
}

// fail records that the socket failed: nothing more is written.
func (o *outbox) fail() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.q, o.ended = nil, true
	if o.room != nil {
		close(o.room)
		o.room = nil
	}
}

// waitRoom waits until the queue is at most half full; false if ctx ends
// first.
func (o *outbox) waitRoom(ctx context.Context) bool {
	for {
		o.mu.Lock()
		if len(o.q) <= o.max/2 || o.ended {
			o.mu.Unlock()
			return true
		}
		if o.room == nil {
			o.room = make(chan struct{})
		}
		room := o.room
		o.mu.Unlock()
		select {
		case <-ctx.Done():
			return false
		case <-room:
		}
	}
}

// writeOut is the connection's writer: it writes what is queued, then
// ends. At most one runs at a time (outbox.claim).
func (c *conn) writeOut() {
	defer c.out.writers.Done()
	for {
		frames, ping, closing, more := c.out.take()
		if !more {
			return
		}
		if closing {
			if c.closeCode != websocket.CloseAbnormalClosure {
				_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(c.closeCode, c.closeText), time.Now().Add(time.Second))
			}
			// The reader sees the socket closed and returns.
			_ = c.ws.NetConn().Close()
			return
		}
		// Everything queued goes out in one write (cork.go).
		n, err := writeFrames(c.ws, frames, func() { _ = c.ws.SetWriteDeadline(time.Now().Add(writeWait)) })
		c.e.m.framesOut.Add(float64(n))
		if err == nil && ping {
			err = c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait))
		}
		if err != nil {
			c.out.fail()
			c.close(websocket.CloseAbnormalClosure, "")
			_ = c.ws.NetConn().Close() // wake the reader
			return
		}
	}
}

// sendPaced queues a frame of a sync replay, waiting while the queue is more
// than half full: a replay may be larger than the queue.
func (c *conn) sendPaced(f []byte) bool {
	if !c.out.waitRoom(c.ctx) {
		return false
	}
	c.send(f)
	return c.ctx.Err() == nil
}
