package edge_test

import (
	"context"
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
	if f := ca.next(30 * time.Second); f.Type != "ack" || f.Seq != 1 {
		t.Fatalf("send: want ack 1, got %+v", f)
	}
	ca.send(map[string]any{"type": "recall", "id": "r1", "conv": conv, "target": 1})
	if f := ca.next(30 * time.Second); f.Type != "ack" || f.ID != "r1" || f.Seq != 2 {
		t.Fatalf("alice's recall: want ack 2, got %+v", f)
	}
	for _, id := range []string{"rb1", "rb2"} {
		cb.send(map[string]any{"type": "recall", "id": id, "conv": conv, "target": 1})
		for {
			f := cb.next(30 * time.Second)
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

// A member whose leave is in flight (marked in Postgres, not yet
// sequenced) is no longer a member anywhere: the socket refuses their sync
// and read as REST refuses their history.
func TestLeavingMemberRefusedOnSocket(t *testing.T) {
	t.Parallel()
	s := start(t)
	a, b := s.user("alice"), s.user("bob")
	var g struct{ ID string }
	if code := s.do("POST", "/v1/conversations", a.token, map[string]any{"kind": "group", "title": "g", "members": []string{b.id}}, &g); code != 201 {
		t.Fatalf("create group: %d", code)
	}
	cb := dial(t, s.edge.Addr, b.token)
	if _, heads := cb.sync(map[string]int64{g.ID: 0}); len(heads) != 1 {
		t.Fatalf("bob's sync as a member: heads %v", heads)
	}
	// The state removeMember leaves behind should sequencing the leave fail.
	if _, err := s.main.Pool.Exec(context.Background(), "UPDATE members SET pending_op='leave', pending_id='l1', pending_by=$2 WHERE conv_id=$1 AND user_id=$2", g.ID, b.id); err != nil {
		t.Fatal(err)
	}
	for _, frame := range []map[string]any{
		{"type": "sync", "id": "s2", "cursors": map[string]int64{g.ID: 0}},
		{"type": "read", "id": "rd1", "conv": g.ID, "seq": 0},
	} {
		cb.send(frame)
		if f := cb.next(30 * time.Second); f.Type != "error" || f.ID != frame["id"] || f.Code != "forbidden" {
			t.Fatalf("leaving member's %s: want error forbidden, got %+v", frame["type"], f)
		}
	}
	if code := s.do("GET", "/v1/conversations/"+g.ID+"/messages", b.token, nil, nil); code != 403 {
		t.Fatalf("leaving member's history over REST: %d, want 403", code)
	}
}
