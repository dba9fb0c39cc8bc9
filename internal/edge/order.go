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

// stream is one conversation's delivery state on one connection. It is
// guarded by its connection's mutex.
type stream struct {
	cursor    int64 // last seq delivered; -1 until the first arrival or sync sets it
	held      map[int64]*slot
	syncing   int         // syncs of this conversation in progress: hold everything
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
}

// filled reports whether the slot can be delivered.
func (s *slot) ready() bool { return len(s.acks) > 0 || (s.event != nil && s.own == "") }

func newStream() *stream { return &stream{cursor: -1, held: map[int64]*slot{}} }

// baseline starts a stream that has no cursor yet at the first seq it sees.
func (s *stream) baseline(seq int64) {
	if s.cursor < 0 && s.syncing == 0 {
		s.cursor = seq - 1
	}
}

// addEvent records an event arriving; own is the command id when it is one
// of this connection's commands still waiting for its answer.
func (s *stream) addEvent(seq int64, frame []byte, own string) {
	s.baseline(seq)
	if s.cursor >= 0 && seq <= s.cursor {
		return // delivered already
	}
	sl := s.held[seq]
	if sl == nil {
		sl = &slot{}
		s.held[seq] = sl
	}
	if sl.event != nil || len(sl.acks) > 0 {
		return // duplicate
	}
	sl.event, sl.own = frame, own
}

// addAck records an ack; it reports true when the ack is for a seq
// delivered already and must be sent at once (a resend's answer: every
// command gets its ack).
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
	sl.acks = append(sl.acks, frame)
	sl.own = ""
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
	if s.syncing > 0 || s.cursor < 0 {
		return out
	}
	for {
		sl := s.held[s.cursor+1]
		if sl == nil || !sl.ready() {
			return out
		}
		delete(s.held, s.cursor+1)
		s.cursor++
		if len(sl.acks) > 0 {
			out = append(out, sl.acks...)
		} else {
			out = append(out, sl.event)
		}
	}
}

// settle ends a sync that set the cursor to c: what it replayed is dropped
// from the buffer, except acks, which are always sent.
func (s *stream) settle(c int64, out [][]byte) [][]byte {
	s.syncing--
	s.cursor = c
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
	if s.syncing > 0 || s.cursor < 0 || len(s.held) == 0 || s.held[s.cursor+1] != nil {
		return 0, 0, false
	}
	first := int64(-1)
	for seq := range s.held {
		if first < 0 || seq < first {
			first = seq
		}
	}
	return s.cursor + 1, first - 1, true
}
