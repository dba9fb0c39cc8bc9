package edge

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// gorilla/websocket writes every frame to the connection as soon as the
// frame is complete, so N queued frames cost N write syscalls. The socket
// under each WebSocket is wrapped in a corkConn instead: while the writer
// is corked, what gorilla writes gathers in a buffer, and uncorking sends
// it in one write. Only the writer goroutine corks; a pong that the reader
// goroutine sends meanwhile joins the buffer (gorilla writes whole frames,
// so frames never interleave) and goes out with the batch.

// corkLimit is how much a corked writer gathers before it writes anyway,
// so a long sync replay streams rather than piling up in memory.
const corkLimit = 64 << 10

var corkBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

type corkConn struct {
	net.Conn
	br  *bufio.Reader // what the WebSocket reads from (corkWriter)
	mu  sync.Mutex
	buf *[]byte // non-nil while corked
	// deadline is the write deadline set while corked, for the flush; set
	// is the one on the socket.
	deadline, set time.Time
}

// deadlineSlack is how much earlier than asked a write deadline may fall:
// a deadline that moved less than this since the socket's was set is not
// set again.
const deadlineSlack = time.Second

// readBufferSize is the read buffer of a connection, which it holds for
// life: small, as a frame bigger than it is read straight into the message.
const readBufferSize = 512

// Write sends p, or gathers it while corked.
func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.buf != nil {
		*c.buf = append(*c.buf, p...)
		c.mu.Unlock()
		return len(p), nil
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// SetWriteDeadline keeps a deadline set while corked for the flush, and
// sets one on the socket only once it moved by deadlineSlack: gorilla sets
// one before every frame it writes, and each set rearms the socket's timer,
// work for nothing for a frame that is only gathered or a deadline that
// moved by a few milliseconds.
func (c *corkConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.buf != nil {
		c.deadline = t
		return nil
	}
	return c.setDeadline(t)
}

// setDeadline sets t on the socket unless the one there is at most
// deadlineSlack earlier. c.mu is held.
func (c *corkConn) setDeadline(t time.Time) error {
	if !t.IsZero() && !c.set.IsZero() && !t.Before(c.set) && t.Sub(c.set) < deadlineSlack {
		return nil
	}
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	c.set = t
	return nil
}

// cork starts gathering writes.
func (c *corkConn) cork() {
	c.mu.Lock()
	if c.buf == nil {
		c.buf = corkBuffers.Get().(*[]byte)
	}
	c.mu.Unlock()
}

// gathered is how many bytes wait for the next flush.
func (c *corkConn) gathered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.buf == nil {
		return 0
	}
	return len(*c.buf)
}

// uncork writes what was gathered in one write and stops gathering; the
// buffer goes back to the pool, so an idle connection holds none.
func (c *corkConn) uncork() error {
	c.mu.Lock()
	b, deadline := c.buf, c.deadline
	c.buf, c.deadline = nil, time.Time{}
	var err error
	if b != nil && len(*b) > 0 && !deadline.IsZero() {
		err = c.setDeadline(deadline)
	}
	c.mu.Unlock()
	if b == nil {
		return nil
	}
	if len(*b) > 0 && err == nil {
		_, err = c.Conn.Write(*b)
	}
	if cap(*b) <= 4*corkLimit {
		*b = (*b)[:0]
		corkBuffers.Put(b)
	}
	return err
}

// corkWriter hands the upgrader the hijacked socket wrapped in a corkConn.
type corkWriter struct{ http.ResponseWriter }

func (w corkWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("edge: response cannot be hijacked")
	}
	nc, brw, err := h.Hijack()
	if err != nil {
		return nil, nil, err
	}
	if brw.Reader.Buffered() > 0 {
		return nc, brw, nil // the upgrader refuses it
	}
	// The upgrader (ReadBufferSize 0) reads from brw.Reader when it holds
	// more than 256 bytes, else from a 4 KiB one of its own: this one is
	// ours, so that the connection sees whether a frame is buffered
	// (readFrames), and smaller than net/http's.
	cc := &corkConn{Conn: nc}
	cc.br = bufio.NewReaderSize(cc, readBufferSize)
	return cc, bufio.NewReadWriter(cc.br, brw.Writer), nil
}

// writeFrames writes text frames, in one write syscall when the socket is
// a corkConn (in bursts of corkLimit); deadline sets the write deadline,
// once for each burst.
func writeFrames(ws *websocket.Conn, frames [][]byte, deadline func()) (written int, err error) {
	cc, _ := ws.NetConn().(*corkConn)
	// One small frame goes out as it is: nothing to gather, no copy.
	if cc != nil && (len(frames) > 1 || len(frames) == 1 && len(frames[0]) > 512) {
		cc.cork()
		defer func() {
			if ferr := cc.uncork(); err == nil && ferr != nil {
				err = ferr
			}
		}()
	}
	deadline()
	for _, f := range frames {
		if err := ws.WriteMessage(websocket.TextMessage, f); err != nil {
			return written, err
		}
		written++
		if cc != nil && cc.gathered() >= corkLimit {
			if err := cc.uncork(); err != nil {
				return written, err
			}
			cc.cork()
			deadline()
		}
	}
	return written, nil
}
