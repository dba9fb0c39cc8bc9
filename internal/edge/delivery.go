package edge

import (
	"time"

	"github.com/gorilla/websocket"
)

// Delivery and order: every arrival goes through its conversation's stream
// (order.go); until the first sync is answered the connection holds them.

// stream returns conv's stream; c.mu is held.
func (c *conn) stream(conv string) *stream {
	s := c.streams[conv]
	if s == nil {
		s = newStream()
		s.hold = c.holding()
		if c.streams == nil {
			c.streams = map[string]*stream{} // made once something arrives
		}
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
	if from == c.user && c.inFlight[commandID{conv, id}] > 0 {
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
