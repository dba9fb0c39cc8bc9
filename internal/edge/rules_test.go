package edge_test

import (
	"testing"
	"time"
)

// Invariant 7 over the socket: in a direct conversation, bob's recall of a
// message alice sent and recalled is forbidden, not answered with her
// recall's seq.
func TestRecallOfRecalledNeedsPermission(t *testing.T) {
	t.Parallel()
	s := start(t)
	a, b := s.user("alice"), s.user("bob")
	conv := s.direct(a, b)
	ca, cb := dial(t, s.main.Addr, a.token), dial(t, s.edge.Addr, b.token)
	ca.send(sendFrame("m1", conv, 1))
	if f := ca.next(10 * time.Second); f.Type != "ack" || f.Seq != 1 {
		t.Fatalf("send: want ack 1, got %+v", f)
	}
	ca.send(map[string]any{"type": "recall", "id": "r1", "conv": conv, "target": 1})
	if f := ca.next(10 * time.Second); f.Type != "ack" || f.ID != "r1" || f.Seq != 2 {
		t.Fatalf("alice's recall: want ack 2, got %+v", f)
	}
	for _, id := range []string{"rb1", "rb2"} {
		cb.send(map[string]any{"type": "recall", "id": id, "conv": conv, "target": 1})
		for {
			f := cb.next(10 * time.Second)
			if f.Type == "event" {
				continue // alice's message and recall, live
			}
			if f.Type != "error" || f.ID != id || f.Code != "forbidden" {
				t.Fatalf("bob's recall %s of alice's recalled message: want error forbidden, got %+v", id, f)
			}
			break
		}
	}
	if _, head := s.history(a, conv, 0); head != 2 {
		t.Fatalf("head %d after refused recalls, want 2", head)
	}
}
