package edge

import (
	"slices"
	"time"
)

// This file keeps invariant 5 for one connection: each conversation's
// events reach the client in seq order, with no gap and no duplicate, where
// an ack counts as the arrival of its seq.
//
// Seqs reach a connection by three roads that race: acks (straight from the
// sequencer's answer, fast), live events (through the fanout projector,
// later, possibly lost or reordered when several fanout replicas run) and
// history reads (sync and gap repair). Every arrival goes through one
// stream per conversation: a cursor (the last seq delivered) and a small
// buffer of seqs that arrived early. An arrival at cursor+1 is delivered at
// once along with whatever it unblocks; one at or below the cursor is a
// duplicate; one beyond waits, and if the hole before it does not fill by
// itself within gapWait the connection reads it from history.
//
// Until its first sync is answered a connection holds every stream: a
// client must not see a live event that was appended before it connected
// ahead of its own replay (docs/protocol.md, "First sync"). The
// answer sets the cursors of the conversations it named; the others start
// at the first seq they hold.

// stream is one conversation's delivery state on one connection. It is
// guarded by its connection's mutex.
type stream struct {
	cursor    int64 // last seq delivered; -1 until the first arrival or sync sets it
	held      map[int64]*slot
	syncing   int         // syncs of this conversation in progress: hold everything
	hold      bool        // the connection's first sync is not answered yet: hold everything
	timer     *time.Timer // gap repair, armed while a hole waits
	repairing bool        // a history read for the hole is under way
}

// slot is what arrived for one seq beyond the cursor.
type slot struct {
	event []byte   // the event frame, if it came
	acks  [][]byte // ack frames of this connection's commands: they replace the event
	// own is the command id while the event is this connection's own
	// command whose answer has not come back yet: the ack, not the event,
	// belongs here.
	own string
	// sent: the ack went out at once, while the connection held its
	// streams; the seq counts as delivered when the cursor reaches it.
	sent bool
}

// filled reports whether the slot can be delivered.
func (s *slot) ready() bool { return s.sent || len(s.acks) > 0 || (s.event != nil && s.own == "") }

func newStream() *stream { return &stream{cursor: -1, held: map[int64]*slot{}} }

// baseline starts a stream that has no cursor yet at the first seq it sees.
func (s *stream) baseline(seq int64) {
	if s.cursor < 0 && s.syncing == 0 && !s.hold {
		s.setCursor(seq - 1)
	}
}

// setCursor starts a stream at c, forgetting what it holds up to there
// (acks sent already).
func (s *stream) setCursor(c int64) {
	s.cursor = c
	for seq := range s.held {
		if seq <= c {
			delete(s.held, seq)
		}
	}
}

// addEvent records an event arriving; own is the command id when it is one
// of this connection's commands still waiting for its answer. It reports
// whether the event was new.
func (s *stream) addEvent(seq int64, frame []byte, own string) bool {
	s.baseline(seq)
	if s.cursor >= 0 && seq <= s.cursor {
		return false // delivered already
	}
	sl := s.held[seq]
	if sl == nil {
		sl = &slot{}
		s.held[seq] = sl
	}
	if sl.sent || sl.event != nil || len(sl.acks) > 0 {
		return false // duplicate
	}
	sl.event, sl.own = frame, own
	return true
}

// addAck records an ack; it reports true when the ack is for a seq
// delivered already and must be sent at once (a resend's answer: every
// command gets its ack). Before the connection's first sync an ack goes out
// at once too: a client that sends before it syncs must not wait for its
// answers; the seq is remembered as delivered, so its event never follows.
func (s *stream) addAck(seq int64, frame []byte) (now bool) {
	s.baseline(seq)
	if s.cursor >= 0 && seq <= s.cursor && s.syncing == 0 {
		return true
	}
	sl := s.held[seq]
	if sl == nil {
		sl = &slot{}
		s.held[seq] = sl
	}
	sl.own = ""
	if s.hold && s.syncing == 0 {
		sl.sent, sl.event, sl.acks = true, nil, nil
		return true
	}
	sl.acks = append(sl.acks, frame)
	return false
}

// disown turns the placeholder of command id, which failed (no ack will
// come), back into an ordinary event.
func (s *stream) disown(id string) {
	for _, sl := range s.held {
		if sl.own == id {
			sl.own = ""
		}
	}
}

// next pops the frames deliverable now, in order, appending them to out.
func (s *stream) next(out [][]byte) [][]byte {
	if s.syncing > 0 || s.cursor < 0 || s.hold {
		return out
	}
	for {
		sl := s.held[s.cursor+1]
		if sl == nil || !sl.ready() {
			return out
		}
		delete(s.held, s.cursor+1)
		s.cursor++
		if sl.sent {
			continue
		}
		if len(sl.acks) > 0 {
			out = append(out, sl.acks...)
		} else {
			out = append(out, sl.event)
		}
	}
}

// settle ends a sync that answered head c: everything up to it is the
// sync's (the replay, or the client syncs again from where the replay
// stopped), so it is dropped from the buffer, except acks, which are always
// sent; live delivery goes on above c.
func (s *stream) settle(c int64, out [][]byte) [][]byte {
	s.syncing--
	s.cursor = max(s.cursor, c)
	var done []int64
	for seq := range s.held {
		if seq <= c {
			done = append(done, seq)
		}
	}
	slices.Sort(done)
	for _, seq := range done {
		out = append(out, s.held[seq].acks...)
		delete(s.held, seq)
	}
	return out
}

// hole returns the seqs missing before the first held one, when the stream
// waits on a gap (not on its own pending ack).
func (s *stream) hole() (from, to int64, ok bool) {
	if s.syncing > 0 || s.cursor < 0 || s.hold || len(s.held) == 0 || s.held[s.cursor+1] != nil {
		return 0, 0, false
	}
	return s.cursor + 1, s.first(false) - 1, true
}

// first returns the lowest seq held, -1 if none; events only tells it to
// skip the seqs whose acks went out already.
func (s *stream) first(events bool) int64 {
	first := int64(-1)
	for seq, sl := range s.held {
		if (first < 0 || seq < first) && !(events && sl.sent) {
			first = seq
		}
	}
	return first
}

// release ends the hold of the connection's first sync. A stream the sync
// set no cursor for starts at the first event it holds: the seqs of its
// own acks, fast, tell nothing of the events fanout still brings.
func (s *stream) release() {
	s.hold = false
	if s.cursor < 0 && s.syncing == 0 {
		if first := s.first(true); first > 0 {
			s.setCursor(first - 1)
		}
	}
}
