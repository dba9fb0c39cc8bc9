package edge

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/activity"
	"github.com/seqchat/seqchat/internal/auth"
)

// conn is one client connection. Its reader runs on a goroutine of its
// own, the only one an idle connection has (readFrames); a writer runs while there is
// something to write (outbox.go); commands wait for their seq on
// goroutines of their own, so that a slow command never stalls reading.
type conn struct {
	e       *Edge
	user    string
	session string // the token's session: a logout closes the connection
	origin  string // "<edge>/<conn>", what the sequencer stores as Chat-Origin
	pc      activity.Conn
	limit   *rate.Limiter // nil: no limit

	ctx    context.Context
	cancel context.CancelFunc
	ws     *websocket.Conn
	br     *bufio.Reader // what ws reads from (corkWriter): frames buffered
	raw    net.Conn      // the socket under ws, for waitReadable
	out    outbox        // the bounded outbound queue and its writer
	pinger *time.Timer   // the next ping; guarded by out.mu

	closeOnce sync.Once
	closeCode int
	closeText string

	mu         sync.Mutex
	streams    map[string]*stream
	inFlight   map[commandID]int // commands waiting for their seq
	nInFlight  int
	queue      []job // commands waiting to be published, in frame order
	publishing bool  // a goroutine is draining queue
	// queued wakes a lingering publishLoop (made with its first one).
	queued chan struct{}
	// refused is the command that was refused for load or
	// failed to publish, refusedAt when: until it is resent, the
	// connection's later commands are refused too, so that none overtakes
	// it (see submit).
	refused   commandID
	refusedAt time.Time

	// Until its first sync is answered the connection holds the live
	// events that reach it (order.go). holdUntil is when it gives up
	// waiting for that sync (zero: not holding any more); the timer is
	// armed only once something is held, so an idle connection costs none.
	holdUntil time.Time
	holdTimer *time.Timer
	nHeld     int // events held meanwhile, bounded like a stream's buffer
	nSyncs    int // syncs in progress
}

func newConn(e *Edge, claims auth.Claims, id string) *conn {
	// Not a child of a context of the edge's: the parent would hold every
	// connection in its map of children (shutdown cancels them instead).
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		e: e, user: claims.UserID, session: claims.SessionID, origin: e.opt.ID + "/" + id,
		pc:  activity.Conn{User: claims.UserID, ID: id},
		ctx: ctx, cancel: cancel,
		out:       outbox{max: e.opt.OutboundSize},
		holdUntil: time.Now().Add(e.opt.FirstSyncWait),
	}
	if e.opt.RateLimits {
		c.limit = rate.NewLimiter(rate.Limit(e.opt.CommandRate), e.opt.CommandBurst)
	}
	return c
}

// serve runs the connection until it ends: it reads on the caller's
// goroutine and on those readFrames hands the reading to; writers come and
// go with what there is to write (outbox.go). The last reader ends the
// connection (end).
func (c *conn) serve(ws *websocket.Conn) {
	c.ws = ws
	if cc, ok := ws.NetConn().(*corkConn); ok {
		c.br = cc.br
	}
	c.raw = rawConn(ws.NetConn())
	c.out.mu.Lock()
	c.pinger = time.AfterFunc(c.e.opt.PingInterval, c.ping)
	c.out.mu.Unlock()
	if c.out.start() {
		go c.writeOut()
	}
	c.ws.SetReadLimit(maxFrame) // gorilla answers a bigger frame with 1009
	_ = c.ws.SetReadDeadline(time.Now().Add(c.e.opt.IdleTimeout))
	c.ws.SetPongHandler(func(string) error { c.pong(); return nil })
	c.awaitFrames()
}

// pong takes the client's answer to a ping: it is alive.
func (c *conn) pong() { _ = c.ws.SetReadDeadline(time.Now().Add(c.e.opt.IdleTimeout)) }

// readFrames reads and handles frames while they come. Handling a frame
// grows the goroutine's stack (JSON decoding), and the garbage collector
// gives that back only slowly: so when no frame is buffered the wait for the
// next one goes to a fresh goroutine (awaitFrames, idle.go), whose stack
// stays small for as long as the connection is idle, and this one ends.
func (c *conn) readFrames() {
	idle := c.e.opt.IdleTimeout
	var buf frameBuffer
	for {
		data, err := buf.read(c.ws)
		if err != nil {
			buf.release()
			c.end(err)
			return
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(idle))
		c.e.m.framesIn.Inc()
		c.handle(data)
		buf.release()
		if c.br != nil && c.br.Buffered() == 0 {
			go c.awaitFrames()
			return
		}
	}
}

// end closes the connection after its reading ended with err.
func (c *conn) end(err error) {
	if !errorIs(err) && !errors.Is(err, websocket.ErrReadLimit) {
		c.e.opt.Log.Debug("connection ended", "user", c.user, "conn", c.origin, "err", err)
	}
	c.close(websocket.CloseNormalClosure, "")
	c.cancel()
	c.out.mu.Lock()
	c.pinger.Stop() // closing: ping sets it no more
	c.out.mu.Unlock()
	c.out.writers.Wait()
	_ = c.ws.Close()
	c.e.remove(c)
}

// ping has the writer send a ping, every PingInterval until the connection
// closes: a timer, not a goroutine, waits for it.
func (c *conn) ping() {
	ok, start := c.out.pingDue()
	if !ok {
		return
	}
	c.out.mu.Lock()
	if !c.out.closing {
		c.pinger.Reset(c.e.opt.PingInterval)
	}
	c.out.mu.Unlock()
	if start {
		c.writeOut() // on the timer's goroutine: pings of many idle connections come at once
	}
}

// close asks the writer to send a close frame and end the connection.
func (c *conn) close(code int, text string) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeText = code, text
		if c.out.shut() {
			go c.writeOut()
		}
	})
}

func (c *conn) readLoop() error {
	idle := c.e.opt.IdleTimeout
	c.ws.SetReadLimit(maxFrame) // gorilla answers a bigger frame with 1009
	_ = c.ws.SetReadDeadline(time.Now().Add(idle))
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(time.Now().Add(idle)) })
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return err
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(idle))
		c.e.m.framesIn.Inc()
		c.handle(data)
	}
}

func (c *conn) fail(id string, err error) {
	if c.ctx.Err() != nil {
		return // closed: nobody to tell
	}
	code := events.CodeOf(err)
	if code == events.CodeInternal || code == events.CodeUnavailable {
		// Under overload or an outage every command fails alike, tens of
		// thousands a second: a line each would cost more than the refusals
		// (15% of the CPU at 10,000 commands/s offered). So one line a
		// minute per kind of failure, saying how many were held back; the
		// metrics count them all.
		c.e.logFailure("command failed: "+events.MessageOf(err), err, "user", c.user, "code", code)
	}
	c.send(encode(errorFrame{Type: "error", ID: id, Code: string(code), Message: events.MessageOf(err)}))
}

// handle answers one client frame. Nothing it does blocks on I/O, but for
// the per-user limit reading a user's count once per window.
func (c *conn) handle(data []byte) {
	f, id, err := decodeFrame(data)
	if err != nil {
		c.fail(id, err)
		return
	}
	if f.Type == "ping" {
		c.send(encode(pongFrame{Type: "pong", ID: f.ID}))
		return
	}
	if f.Type == "typing" { // its own limit, not the commands' (typing.go)
		c.typing(f)
		return
	}
	if c.limit != nil && !c.limit.Allow() {
		c.e.m.rejected.WithLabelValues(activity.ConnectionCommands).Inc()
		c.fail(f.ID, events.Errorf(events.CodeRateLimited, "too many commands; retry later with the same id"))
		return
	}
	if l := c.e.opt.UserLimit; l != nil {
		if ok, retry := l.Allow(c.user); !ok {
			c.e.m.rejected.WithLabelValues(activity.UserCommands).Inc()
			c.fail(f.ID, events.TooManyUserCommands(retry))
			return
		}
	}
	switch f.Type {
	case "send":
		c.submit(events.Command{Op: events.OpSend, ID: f.ID, Conv: f.Conv, From: c.user, Body: f.Body, ReplyTo: f.ReplyTo, Mentions: f.Mentions})
	case "edit":
		c.submit(events.Command{Op: events.OpEdit, ID: f.ID, Conv: f.Conv, From: c.user, Body: f.Body, Target: *f.Target})
	case "react":
		c.submit(events.Command{Op: events.OpReact, ID: f.ID, Conv: f.Conv, From: c.user, Target: *f.Target, Emoji: f.Emoji, On: f.On})
	case "recall":
		c.submit(events.Command{Op: events.OpRecall, ID: f.ID, Conv: f.Conv, From: c.user, Target: *f.Target})
	case "read":
		go c.read(f.ID, f.Conv, *f.Seq)
	case "sync":
		go c.sync(f.ID, f.Cursors)
	}
}

// frameBuffers hold inbound frames while they are handled, so that reading
// a frame allocates nothing and an idle connection holds no buffer.
var frameBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// frameBuffer holds one inbound frame while it is handled: nothing of the
// frame may be kept past release (decoding copies what it keeps).
type frameBuffer struct{ buf *[]byte }

// read reads the next frame, as ws.ReadMessage would, into a pooled buffer.
func (f *frameBuffer) read(ws *websocket.Conn) ([]byte, error) {
	_, r, err := ws.NextReader()
	if err != nil {
		return nil, err
	}
	if f.buf == nil {
		f.buf = frameBuffers.Get().(*[]byte)
	}
	b := (*f.buf)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			*f.buf = b
			return b, nil
		}
		if err != nil {
			*f.buf = b
			return nil, err
		}
	}
}

// release gives the buffer back; a big one goes to the garbage collector.
func (f *frameBuffer) release() {
	if f.buf == nil {
		return
	}
	if cap(*f.buf) <= 16<<10 {
		frameBuffers.Put(f.buf)
	}
	f.buf = nil
}
