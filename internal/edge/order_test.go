package edge

import (
	"fmt"
	"slices"
	"testing"
)

func ev(seq int64) []byte  { return []byte(fmt.Sprintf("e%d", seq)) }
func ack(seq int64) []byte { return []byte(fmt.Sprintf("a%d", seq)) }

func names(out [][]byte) []string {
	var s []string
	for _, b := range out {
		s = append(s, string(b))
	}
	return s
}

func TestStreamOrder(t *testing.T) {
	s := newStream()
	s.cursor = 0 // as after a sync from 0
	var out [][]byte
	s.addEvent(3, ev(3), "")
	s.addEvent(2, ev(2), "")
	out = s.next(out)
	if len(out) != 0 {
		t.Fatalf("delivered across a hole: %v", names(out))
	}
	if from, to, ok := s.hole(); !ok || from != 1 || to != 1 {
		t.Fatalf("hole = %d..%d %v, want 1..1", from, to, ok)
	}
	s.addEvent(1, ev(1), "")
	s.addEvent(2, ev(2), "") // duplicate while held
	out = s.next(out)
	s.addEvent(2, ev(2), "") // duplicate after delivery
	out = s.next(out)
	if want := []string{"e1", "e2", "e3"}; !slices.Equal(names(out), want) {
		t.Fatalf("got %v, want %v", names(out), want)
	}
}

func TestStreamOwnAck(t *testing.T) {
	s := newStream()
	s.cursor = 0
	// Our own event comes before its ack: it holds the place, the ack
	// takes it; a resend's ack for a delivered seq goes out at once.
	s.addEvent(1, ev(1), "m1")
	if out := s.next(nil); len(out) != 0 {
		t.Fatalf("own event delivered before its ack: %v", names(out))
	}
	if now := s.addAck(1, ack(1)); now {
		t.Fatal("ack of a held seq sent out of order")
	}
	if out := s.next(nil); !slices.Equal(names(out), []string{"a1"}) {
		t.Fatalf("got %v, want [a1]", names(out))
	}
	if now := s.addAck(1, ack(1)); !now {
		t.Fatal("a resend's ack was not sent at once")
	}
	// A failed command's place becomes an ordinary event.
	s.addEvent(2, ev(2), "m2")
	s.disown("m2")
	if out := s.next(nil); !slices.Equal(names(out), []string{"e2"}) {
		t.Fatalf("got %v, want [e2]", names(out))
	}
}

func TestStreamBaselineAndSync(t *testing.T) {
	s := newStream()
	s.addAck(7, ack(7)) // no cursor yet: the first arrival sets it
	if out := s.next(nil); !slices.Equal(names(out), []string{"a7"}) {
		t.Fatalf("got %v", names(out))
	}
	s.syncing++
	s.addEvent(9, ev(9), "")   // live, during the sync
	s.addAck(8, ack(8))        // ack during the sync: held too
	s.addEvent(11, ev(11), "") // beyond the replay
	if out := s.next(nil); len(out) != 0 {
		t.Fatalf("delivered during a sync: %v", names(out))
	}
	// The sync replayed up to 9: the ack of 8 still goes out, 9 is dropped.
	out := s.settle(9, nil)
	out = s.next(out)
	if !slices.Equal(names(out), []string{"a8"}) {
		t.Fatalf("got %v, want [a8]", names(out))
	}
	if from, to, ok := s.hole(); !ok || from != 10 || to != 10 {
		t.Fatalf("hole = %d..%d %v, want 10..10", from, to, ok)
	}
	s.addEvent(10, ev(10), "")
	if out := s.next(nil); !slices.Equal(names(out), []string{"e10", "e11"}) {
		t.Fatalf("got %v", names(out))
	}
}

func TestStreamHoldBeforeFirstSync(t *testing.T) {
	// Live events before the first sync wait; an ack goes out at once and
	// its seq counts as delivered.
	s := newStream()
	s.hold = true
	s.addEvent(5, ev(5), "")
	s.addEvent(6, ev(6), "")
	if now := s.addAck(7, ack(7)); !now {
		t.Fatal("an ack before the first sync was held")
	}
	s.addEvent(7, ev(7), "") // the event of that ack: never delivered
	s.addEvent(8, ev(8), "")
	if out := s.next(nil); len(out) != 0 {
		t.Fatalf("delivered before the first sync: %v", names(out))
	}
	if _, _, ok := s.hole(); ok {
		t.Fatal("a held stream asks for gap repair")
	}
	// The sync answers head 6: what it covered is dropped, the rest follows.
	s.syncing++
	out := s.settle(6, nil)
	s.release()
	out = s.next(out)
	if want := []string{"e8"}; !slices.Equal(names(out), want) {
		t.Fatalf("got %v, want %v", names(out), want)
	}

	// A conversation the sync did not name starts at what it holds.
	u := newStream()
	u.hold = true
	u.addEvent(3, ev(3), "")
	u.addEvent(2, ev(2), "")
	u.release()
	if out := u.next(nil); !slices.Equal(names(out), []string{"e2", "e3"}) {
		t.Fatalf("unnamed conversation: got %v", names(out))
	}

	// Only an ack of its own held: the events before it are still to come.
	w := newStream()
	w.hold = true
	w.addAck(4, ack(4))
	w.release()
	for seq := int64(1); seq <= 5; seq++ {
		w.addEvent(seq, ev(seq), "")
	}
	if out := w.next(nil); !slices.Equal(names(out), []string{"e1", "e2", "e3", "e5"}) {
		t.Fatalf("after an early ack: got %v", names(out))
	}
}
