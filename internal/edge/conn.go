package edge

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/auth"
	"github.com/seqchat/seqchat/internal/membership"
	"github.com/seqchat/seqchat/internal/presence"
	"github.com/seqchat/seqchat/internal/ratelimit"
	"github.com/seqchat/seqchat/timeline"
)

// conn is one client connection. Its reader runs on the HTTP handler's
// goroutine, its writer on one of its own; commands wait for their seq on
// goroutines of their own, so that a slow command never stalls reading.
type conn struct {
	e       *Edge
	user    string
	session string // the token's session: a logout closes the connection
	origin  string // "<edge>/<conn>", what the sequencer stores as Chat-Origin
	pc      presence.Conn
	limit   *rate.Limiter // nil: no limit

	ctx    context.Context
	cancel context.CancelFunc
	ws     *websocket.Conn
	out    outbox        // the bounded outbound queue
	done   chan struct{} // closed when the connection is to close

	closeOnce sync.Once
	closeCode int
	closeText string

	mu         sync.Mutex
	streams    map[string]*stream
	inFlight   map[string]int // conv+"/"+id of commands waiting for their seq
	nInFlight  int
	queue      []job // commands waiting to be published, in frame order
	publishing bool  // a goroutine is draining queue
	// refused is the command (inFlightKey) that was refused for load or
	// failed to publish, refusedAt when: until it is resent, the
	// connection's later commands are refused too, so that none overtakes
	// it (see submit).
	refused   string
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

// job is a command waiting to be published.
type job struct {
	cmd   events.Command
	start time.Time
}

func newConn(e *Edge, claims auth.Claims, id string) *conn {
	ctx, cancel := context.WithCancel(e.ctx)
	c := &conn{
		e: e, user: claims.UserID, session: claims.SessionID, origin: e.opt.ID + "/" + id,
		pc:  presence.Conn{User: claims.UserID, ID: id},
		ctx: ctx, cancel: cancel,
		out: outbox{max: e.opt.OutboundSize, wake: make(chan struct{}, 1)}, done: make(chan struct{}),
		streams: map[string]*stream{}, inFlight: map[string]int{},
		holdUntil: time.Now().Add(e.opt.FirstSyncWait),
	}
	if e.opt.RateLimits {
		c.limit = rate.NewLimiter(rate.Limit(e.opt.CommandRate), e.opt.CommandBurst)
	}
	return c
}

// serve runs the connection until it ends.
func (c *conn) serve(ws *websocket.Conn) {
	c.ws = ws
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); c.writeLoop() }()
	err := c.readLoop()
	if err != nil && !errorIs(err) && !errors.Is(err, websocket.ErrReadLimit) {
		c.e.opt.Log.Debug("connection ended", "user", c.user, "conn", c.origin, "err", err)
	}
	c.close(websocket.CloseNormalClosure, "")
	c.cancel()
	<-writerDone
	_ = ws.Close()
}

// close asks the writer to send a close frame and end the connection.
func (c *conn) close(code int, text string) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeText = code, text
		close(c.done)
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

func (c *conn) writeLoop() {
	ping := time.NewTicker(c.e.opt.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-c.out.wake:
			// Everything queued goes out in one write (cork.go).
			n, err := writeFrames(c.ws, c.out.take(), func() { _ = c.ws.SetWriteDeadline(time.Now().Add(writeWait)) })
			c.e.m.framesOut.Add(float64(n))
			if err != nil {
				c.close(websocket.CloseAbnormalClosure, "")
				_ = c.ws.NetConn().Close() // wake the reader
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				_ = c.ws.NetConn().Close()
				return
			}
		case <-c.done:
			if c.closeCode != websocket.CloseAbnormalClosure {
				_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(c.closeCode, c.closeText), time.Now().Add(time.Second))
			}
			// The reader sees the socket closed and returns.
			_ = c.ws.NetConn().Close()
			return
		}
	}
}

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

// Frames.

type ackFrame struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Conv string `json:"conv"`
	Seq  int64  `json:"seq,omitempty"`
	TS   int64  `json:"ts,omitempty"`
}

type errorFrame struct {
	Type    string `json:"type"`
	ID      string `json:"id,omitempty"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

type pongFrame struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
}

type syncedFrame struct {
	Type  string           `json:"type"`
	ID    string           `json:"id,omitempty"`
	Heads map[string]int64 `json:"heads"`
}

func encode(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func (c *conn) fail(id string, err error) {
	if c.ctx.Err() != nil {
		return // closed: nobody to tell
	}
	code := events.CodeOf(err)
	if code == events.CodeInternal || code == events.CodeUnavailable {
		c.e.opt.Log.Warn("command failed", "user", c.user, "err", err)
	}
	c.send(encode(errorFrame{Type: "error", ID: id, Code: string(code), Message: events.MessageOf(err)}))
}

// frame is any client frame.
type frame struct {
	Type    string           `json:"type"`
	ID      string           `json:"id"`
	Conv    string           `json:"conv"`
	Body    json.RawMessage  `json:"body"`
	Target  *int64           `json:"target"`
	Seq     *int64           `json:"seq"`
	Cursors map[string]int64 `json:"cursors"`
	// Richer messages (rich.go).
	ReplyTo  int64    `json:"reply_to"`
	Mentions []string `json:"mentions"`
	Emoji    string   `json:"emoji"`
	On       *bool    `json:"on"`
}

func badRequest(format string, args ...any) error {
	return events.Errorf(events.CodeBadRequest, format, args...)
}

// decodeFrame parses and checks one client frame. On error, id is the
// frame's id when it has a valid one (the error frame names it).
func decodeFrame(data []byte) (f frame, id string, err error) {
	// A frame refused for a mistyped field still names its id when that
	// parsed: json.Unmarshal fills what it can before it gives up.
	if err := events.DecodeObject("frame", data, &f); err != nil {
		id := f.ID
		if !events.ValidID(id) {
			id = ""
		}
		return f, id, err
	}
	if f.ID != "" && !events.ValidID(f.ID) {
		return f, "", events.BadID()
	}
	if f.Type == "ping" {
		return f, f.ID, nil
	}
	if err := check(&f); err != nil {
		return f, f.ID, err
	}
	return f, f.ID, nil
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
		c.e.m.rejected.WithLabelValues(ratelimit.ConnectionCommands).Inc()
		c.fail(f.ID, events.Errorf(events.CodeRateLimited, "too many commands; retry later with the same id"))
		return
	}
	if l := c.e.opt.UserLimit; l != nil {
		if ok, retry := l.Allow(c.user); !ok {
			c.e.m.rejected.WithLabelValues(ratelimit.UserCommands).Inc()
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

// check validates a frame's fields for its type.
func check(f *frame) error {
	needConv := func() error {
		if f.ID == "" {
			return badRequest("%s needs an id", f.Type)
		}
		if f.Conv == "" {
			return badRequest("%s needs a conv", f.Type)
		}
		if !events.ValidToken(f.Conv) {
			return badRequest("conv %q is not a conversation id", f.Conv)
		}
		return nil
	}
	switch f.Type {
	case "send":
		if err := needConv(); err != nil {
			return err
		}
		if len(f.Body) == 0 || string(f.Body) == "null" {
			return badRequest("send needs a body")
		}
		if len(f.Body) > events.MaxBodySize {
			return events.BodyTooLarge(events.MaxBodySize)
		}
		return checkRich(f)
	case "edit", "react":
		if err := needConv(); err != nil {
			return err
		}
		return checkRich(f)
	case "recall":
		if err := needConv(); err != nil {
			return err
		}
		if f.Target == nil || *f.Target < 1 {
			return badRequest("recall needs a target seq")
		}
	case "read":
		if err := needConv(); err != nil {
			return err
		}
		if f.Seq == nil || *f.Seq < 0 {
			return events.NotNonNegative("seq")
		}
	case "sync":
		if len(f.Cursors) > maxSyncConvs {
			return badRequest("a sync names at most %d conversations", maxSyncConvs)
		}
		for conv, cur := range f.Cursors {
			if !events.ValidToken(conv) {
				return badRequest("conv %q is not a conversation id", conv)
			}
			if cur < 0 {
				return badRequest("cursor of %s must be a non-negative seq", conv)
			}
		}
	case "typing":
		return checkTyping(f)
	case "":
		return badRequest("frame needs a type")
	default:
		return badRequest("unknown frame type %q", f.Type)
	}
	return nil
}

// Commands.

func inFlightKey(conv, id string) string { return conv + "/" + id }

// submit queues cmd for publishing. Commands are published one at a time in
// frame order, so one connection's messages keep their order in the
// timeline; their answers are awaited concurrently.
func (c *conn) submit(cmd events.Command) {
	key := inFlightKey(cmd.Conv, cmd.ID)
	c.mu.Lock()
	// A command refused for load may be resent after later ones were
	// sent: admitted, those would overtake it. So after a refusal the
	// connection takes nothing but that command again. The block lasts at
	// most refusedBlock: it covers what the client sent before it saw the
	// refusal and a resend after the retry hint; a client that has not
	// resent by then has given up on that command, and blocking its
	// connection longer would only cost goodput.
	if c.refused != "" && c.refused != key && time.Since(c.refusedAt) < refusedBlock {
		c.mu.Unlock()
		c.e.m.refusedBehind.Inc()
		c.fail(cmd.ID, events.Errorf(events.CodeUnavailable, "an earlier command of this connection was refused; resend it first, then this one, with the same ids"))
		return
	}
	c.refused = ""
	var refuse error
	if c.nInFlight >= maxInFlight {
		refuse = events.Errorf(events.CodeUnavailable, "too many commands in flight; retry later with the same id")
	} else if !c.e.cmds.Admit() {
		// Over the process's limit: refused now rather than queued
		// behind a backlog it would not get through in time.
		refuse = timeline.Busy()
	}
	if refuse != nil {
		c.refused, c.refusedAt = key, time.Now()
		c.mu.Unlock()
		c.fail(cmd.ID, refuse)
		return
	}
	c.nInFlight++
	c.inFlight[key]++
	c.queue = append(c.queue, job{cmd: cmd, start: time.Now()})
	start := !c.publishing
	c.publishing = true
	c.mu.Unlock()
	if start {
		go c.publishLoop()
	}
}

// publishLoop drains the publish queue and ends when it is empty, so that
// an idle connection costs no goroutine. What queued up while a publish was
// under way goes as one CMDS message (per partition, in frame order): the
// queue then costs one store and one PubAck wait, not one per command.
func (c *conn) publishLoop() {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.publishing = false
			c.mu.Unlock()
			return
		}
		n, size := 1, len(c.queue[0].cmd.Body)
		for n < len(c.queue) && n < maxPublishBatch && c.e.cmds.SamePartition(c.queue[0].cmd.Conv, c.queue[n].cmd.Conv) {
			if size += len(c.queue[n].cmd.Body); size > timeline.MaxCommandBatchBytes/2 {
				break
			}
			n++
		}
		jobs := slices.Clone(c.queue[:n])
		clear(c.queue[:n])
		c.queue = c.queue[n:]
		c.mu.Unlock()

		cmds := make([]events.Command, len(jobs))
		for i := range jobs {
			cmds[i] = jobs[i].cmd
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.e.opt.CommandTimeout)
		ps, err := c.e.cmds.PublishBatch(ctx, cmds, c.origin)
		if err != nil {
			cancel()
			// The commands queued behind them fail too: published now, they
			// would overtake them when the client resends them.
			// And so do the ones sent after them, until the first is resent.
			c.mu.Lock()
			rest := c.queue
			c.queue = nil
			c.refused, c.refusedAt = inFlightKey(jobs[0].cmd.Conv, jobs[0].cmd.ID), time.Now()
			c.mu.Unlock()
			for _, j := range append(jobs, rest...) {
				c.answered(j, events.Result{}, err)
			}
			continue
		}
		// One message's commands are sequenced in one batch and answered
		// together: one goroutine waits for them all.
		go func() {
			defer cancel()
			for i, p := range ps {
				res, err := p.Wait(ctx)
				c.answered(jobs[i], res, err)
			}
		}()
	}
}

// answered routes a command's result: the ack through the conversation's
// stream (it is the arrival of its seq), an error straight out.
func (c *conn) answered(j job, res events.Result, err error) {
	c.e.cmds.Release() // taken in submit
	c.mu.Lock()
	defer c.mu.Unlock()
	// Once the ack is recorded (an ack tells nothing of where a stream
	// without a cursor starts).
	defer c.releaseIfDue()
	key := inFlightKey(j.cmd.Conv, j.cmd.ID)
	c.nInFlight--
	if c.inFlight[key]--; c.inFlight[key] <= 0 {
		delete(c.inFlight, key)
	}
	if err != nil {
		// An event already held as this command's place gets delivered as
		// an event after all: no ack will take its place.
		if s := c.streams[j.cmd.Conv]; s != nil && c.inFlight[key] == 0 {
			s.disown(j.cmd.ID)
			c.flush(j.cmd.Conv, s)
		}
		c.fail(j.cmd.ID, err)
		return
	}
	c.e.m.ackTime.Observe(time.Since(j.start).Seconds())
	ack := encode(ackFrame{Type: "ack", ID: j.cmd.ID, Conv: j.cmd.Conv, Seq: res.Seq, TS: res.TS})
	s := c.stream(j.cmd.Conv)
	if s.addAck(res.Seq, ack) {
		c.send(ack)
		return
	}
	c.flush(j.cmd.Conv, s)
}

// Delivery and order (see order.go).

// stream returns conv's stream; c.mu is held.
func (c *conn) stream(conv string) *stream {
	s := c.streams[conv]
	if s == nil {
		s = newStream()
		s.hold = c.holding()
		c.streams[conv] = s
	}
	return s
}

// holding reports whether the connection still waits for its first sync;
// c.mu is held.
func (c *conn) holding() bool { return !c.holdUntil.IsZero() }

// release ends the wait for the first sync and delivers what was held;
// c.mu is held.
func (c *conn) release() {
	if !c.holding() {
		return
	}
	c.holdUntil, c.nHeld = time.Time{}, 0
	if c.holdTimer != nil {
		c.holdTimer.Stop()
		c.holdTimer = nil
	}
	for conv, s := range c.streams {
		s.release()
		c.flush(conv, s)
	}
}

// releaseIfDue releases the held events of a connection that has had no
// sync answered in time, unless a sync is on its way (its answer releases
// them); c.mu is held.
func (c *conn) releaseIfDue() {
	if c.holding() && c.nSyncs == 0 && !time.Now().Before(c.holdUntil) {
		c.release()
	}
}

// arriveEvent takes an event from fanout or history.
func (c *conn) arriveEvent(h eventHead, frame []byte) {
	if frame == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addEvent(h, frame)
}

// addEvent records an event; c.mu is held. An event of a command this
// connection still waits on holds its place for the ack, which the
// connection gets instead.
func (c *conn) addEvent(h eventHead, frame []byte) {
	s := c.stream(h.Conv)
	if s.addEvent(h.Seq, frame, c.ownID(h.Conv, h.ID, h.From)) && c.holding() {
		c.hold() // may release at once, this event included, when the wait is over
	}
	c.flush(h.Conv, s)
}

// hold counts an event held before the first sync and makes sure the wait
// for that sync ends; c.mu is held.
func (c *conn) hold() {
	if c.nHeld++; c.nHeld > 4*c.out.max {
		// Memory stays bounded: a client this far behind syncs anew.
		c.e.m.slow.Inc()
		c.cancel()
		c.close(websocket.ClosePolicyViolation, "too far behind")
		return
	}
	if c.releaseIfDue(); c.nSyncs == 0 {
		c.armHold() // else the sync's end sees to it
	}
}

// armHold makes sure that held events are released when the wait for the
// first sync is over; c.mu is held.
func (c *conn) armHold() {
	if !c.holding() || c.holdTimer != nil || c.nHeld == 0 {
		return
	}
	c.holdTimer = time.AfterFunc(time.Until(c.holdUntil), func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.holdTimer = nil
		c.releaseIfDue()
	})
}

// ownID returns id when the event is a command of this connection still
// waiting for its answer; c.mu is held.
func (c *conn) ownID(conv, id, from string) string {
	if from == c.user && c.inFlight[inFlightKey(conv, id)] > 0 {
		return id
	}
	return ""
}

// flush sends what conv's stream can deliver and arms gap repair when it
// waits on a hole; c.mu is held.
func (c *conn) flush(conv string, s *stream) {
	for _, f := range s.next(nil) {
		c.send(f)
	}
	if len(s.held) > 4*c.out.max {
		// A hole history cannot fill, or a client that never drains.
		c.e.m.slow.Inc()
		c.cancel()
		c.close(websocket.ClosePolicyViolation, "too far behind")
		return
	}
	if _, _, ok := s.hole(); ok && s.timer == nil && !s.repairing {
		s.timer = time.AfterFunc(c.e.opt.GapWait, func() { c.repair(conv) })
	}
}

// repair reads a hole that did not fill by itself from history.
func (c *conn) repair(conv string) {
	c.mu.Lock()
	s := c.streams[conv]
	if s == nil {
		c.mu.Unlock()
		return
	}
	s.timer = nil
	from, to, ok := s.hole()
	if !ok || c.ctx.Err() != nil {
		c.mu.Unlock()
		return
	}
	to = min(to, from+maxReplay-1)
	s.repairing = true
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	list, err := c.e.hist.Events(ctx, conv, from, to)
	cancel()

	c.mu.Lock()
	defer c.mu.Unlock()
	s.repairing = false
	if err != nil {
		if c.ctx.Err() == nil {
			c.e.opt.Log.Warn("repair gap", "conv", conv, "from", from, "to", to, "err", err)
			s.timer = time.AfterFunc(time.Second, func() { c.repair(conv) })
		}
		return
	}
	c.e.m.repairs.Inc()
	for i := range list {
		ev := &list[i]
		s.addEvent(ev.Seq, eventFrame(ev.Encode()), c.ownID(conv, ev.ID, ev.From))
	}
	c.flush(conv, s)
}

// read stores the user's read pointer.
func (c *conn) read(id, conv string, seq int64) {
	ctx, cancel := context.WithTimeout(c.ctx, c.e.opt.CommandTimeout)
	defer cancel()
	if _, err := c.e.member(ctx, c.user, []string{conv}); err != nil {
		c.fail(id, err)
		return
	}
	if c.e.opt.Reads == nil {
		c.fail(id, events.Errorf(events.CodeUnavailable, "reads are not served here"))
		return
	}
	// Only forward, never past the head; unread counts follow, and the
	// user's other connections get a receipt (this one gets the ack).
	if _, err := c.e.opt.Reads.Read(ctx, c.user, conv, seq, c.origin); err != nil {
		c.fail(id, err)
		return
	}
	c.send(encode(ackFrame{Type: "ack", ID: id, Conv: conv}))
}

// sync replays what came after the client's cursors, then answers synced.
// Live events of the named conversations that arrive meanwhile wait in their
// streams and follow the synced frame, neither lost nor repeated.
func (c *conn) sync(id string, cursors map[string]int64) {
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	convs := make([]string, 0, len(cursors))
	for conv := range cursors {
		convs = append(convs, conv)
	}
	slices.Sort(convs)
	joined, err := c.e.member(ctx, c.user, convs)
	if err != nil {
		c.fail(id, err)
		return
	}
	// Hold the live events from here on: anything appended after the head
	// read below arrives after this point.
	c.mu.Lock()
	c.nSyncs++
	for _, conv := range convs {
		c.stream(conv).syncing++
	}
	c.mu.Unlock()
	settled := false
	defer func() {
		if settled {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.nSyncs--
		for _, conv := range convs {
			s := c.streams[conv]
			s.syncing--
			if !c.holding() {
				s.release() // no cursor from this sync: start at what is held
			}
			c.flush(conv, s)
		}
		// A failed sync is no first sync: the wait for one goes on.
		c.releaseIfDue()
		c.armHold()
	}()

	heads := make(map[string]int64, len(convs))
	for _, conv := range convs {
		head, err := c.e.hist.Head(ctx, conv)
		if err != nil {
			c.fail(id, err)
			return
		}
		heads[conv] = head
		from := max(cursors[conv]+1, joined[conv])
		to := min(head, from+maxReplay-1)
		if from > to {
			continue // nothing after the cursor (or a cursor past the head)
		}
		list, err := c.e.hist.Range(ctx, conv, from, to)
		if err != nil {
			c.fail(id, err)
			return
		}
		// Nothing else of conv enters the queue while it syncs, so these
		// can go out without the lock, paced by the client's reading.
		for i := range list {
			if !c.sendPaced(eventFrame(list[i].Encode())) {
				return
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	settled = true
	c.nSyncs--
	var acks [][]byte
	for _, conv := range convs {
		// Live delivery goes on above the head answered: what a replay
		// cut at maxReplay left out, the client syncs again for.
		acks = c.streams[conv].settle(heads[conv], acks)
	}
	for _, a := range acks {
		c.send(a)
	}
	c.send(encode(syncedFrame{Type: "synced", ID: id, Heads: heads}))
	// The first answer ends the hold of every conversation (release
	// flushes them all); later ones flush their own.
	if c.holding() {
		c.release()
		return
	}
	for _, conv := range convs {
		c.flush(conv, c.streams[conv])
	}
}

// member checks that user belongs to each of convs (membership's one rule)
// and returns the seq each one's history starts at for them.
func (e *Edge) member(ctx context.Context, user string, convs []string) (map[string]int64, error) {
	ms, err := membership.Check(ctx, e.pool, user, convs...)
	if err != nil {
		return nil, err
	}
	joined := make(map[string]int64, len(ms))
	for conv, m := range ms {
		joined[conv] = m.Joined
	}
	return joined, nil
}
