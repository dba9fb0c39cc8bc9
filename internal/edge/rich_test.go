package edge_test

import (
	"testing"
	"time"
)

// Edit and react frames are answered like send, refused with the protocol's
// codes as error frames, delivered live to the other members, and a sync
// replays them in order after their message.
func TestEditAndReactFrames(t *testing.T) {
	t.Parallel()
	s := start(t)
	x, y := s.user("wsrichx"), s.user("wsrichy")
	conv := s.direct(x, y)
	cx, cy := dial(t, s.main.Addr, x.token), dial(t, s.edge.Addr, y.token)
	cx.sync(map[string]int64{})
	cy.sync(map[string]int64{})

	cx.send(map[string]any{"type": "send", "id": "m1", "conv": conv, "body": map[string]string{"text": "hi"}})
	ack := cx.next(30 * time.Second)
	if ack.Type != "ack" || ack.Seq != 1 {
		t.Fatalf("send: %+v", ack)
	}
	if ev := cy.events(1)[0]; ev.Kind != "message" || ev.Seq != 1 {
		t.Fatalf("y got %+v", ev)
	}
	for _, tc := range []struct {
		c    *client
		f    map[string]any
		code string
	}{
		{cy, map[string]any{"type": "edit", "id": "e0", "conv": conv, "target": 1, "body": map[string]string{"text": "not mine"}}, "forbidden"},
		{cx, map[string]any{"type": "edit", "id": "e0", "conv": conv, "target": 9, "body": 1}, "not_found"},
		{cx, map[string]any{"type": "edit", "id": "e0", "conv": conv, "target": 1}, "bad_request"},
		{cx, map[string]any{"type": "react", "id": "r0", "conv": conv, "target": 1, "emoji": "", "on": true}, "bad_request"},
		{cx, map[string]any{"type": "react", "id": "r0", "conv": conv, "target": 1, "emoji": "👍"}, "bad_request"},
		{cx, map[string]any{"type": "send", "id": "m0", "conv": conv, "body": 1, "reply_to": 7}, "not_found"},
	} {
		tc.c.send(tc.f)
		if f := tc.c.next(30 * time.Second); f.Type != "error" || f.Code != tc.code {
			t.Fatalf("%v: got %+v, want error %s", tc.f, f, tc.code)
		}
	}
	cx.send(map[string]any{"type": "edit", "id": "e1", "conv": conv, "target": 1, "body": map[string]string{"text": "hi!"}})
	if a := cx.next(30 * time.Second); a.Type != "ack" || a.ID != "e1" || a.Seq != 2 {
		t.Fatalf("edit: %+v", a)
	}
	if ev := cy.next(30 * time.Second); ev.Kind != "edit" || ev.Seq != 2 || ev.Target != 1 || string(ev.Body) != `{"text":"hi!"}` {
		t.Fatalf("y got %+v", ev)
	}
	cy.send(map[string]any{"type": "react", "id": "r1", "conv": conv, "target": 1, "emoji": "👍", "on": true})
	if a := cy.next(30 * time.Second); a.Type != "ack" || a.ID != "r1" || a.Seq != 3 {
		t.Fatalf("react: %+v", a)
	}
	if ev := cx.next(30 * time.Second); ev.Kind != "reaction" || ev.Seq != 3 || ev.Emoji != "👍" || ev.On == nil || !*ev.On {
		t.Fatalf("x got %+v", ev)
	}
	cx.send(map[string]any{"type": "react", "id": "r2", "conv": conv, "target": 1, "emoji": "👍", "on": false})
	if a := cx.next(30 * time.Second); a.Type != "ack" || a.ID != "r2" || a.Seq != 4 {
		t.Fatalf("react: %+v", a)
	}
	if ev := cy.next(30 * time.Second); ev.Kind != "reaction" || ev.Seq != 4 || ev.On == nil || *ev.On {
		t.Fatalf("y got %+v", ev)
	}

	// A new connection's sync replays the edit and the reactions in order.
	c2 := dial(t, s.edge.Addr, y.token)
	replay, heads := c2.sync(map[string]int64{conv: 0})
	if heads[conv] != 4 || len(replay) != 4 {
		t.Fatalf("sync: %+v heads %v", replay, heads)
	}
	for i, kind := range []string{"message", "edit", "reaction", "reaction"} {
		if replay[i].Seq != int64(i+1) || replay[i].Kind != kind {
			t.Fatalf("sync replayed %+v at %d, want %s", replay[i], i, kind)
		}
	}
	if replay[2].On == nil || !*replay[2].On || replay[3].On == nil || *replay[3].On || replay[1].Target != 1 {
		t.Fatalf("sync lost fields: %+v", replay)
	}
}

// Typing reaches the other member's connections on another edge within a
// second, at most one per user and conversation per second; a non-member
// gets forbidden; nothing is stored.
func TestTyping(t *testing.T) {
	t.Parallel()
	s := start(t)
	x, y, z := s.user("typx"), s.user("typy"), s.user("typz")
	conv := s.direct(x, y)
	cx, cy, cz := dial(t, s.main.Addr, x.token), dial(t, s.edge.Addr, y.token), dial(t, s.edge.Addr, z.token)
	cx.sync(map[string]int64{})
	cy.sync(map[string]int64{})
	cz.sync(map[string]int64{})

	// y's edge learns of x's typing through presence: wait until it arrives.
	var got frame
	deadline := time.Now().Add(10 * time.Second)
	for got.Type != "typing" {
		if time.Now().After(deadline) {
			t.Fatal("no typing frame reached y")
		}
		start := time.Now()
		cx.send(map[string]any{"type": "typing", "conv": conv})
		select {
		case got = <-cy.frames:
			if d := time.Since(start); d > time.Second {
				t.Fatalf("typing took %v", d)
			}
		case <-time.After(1100 * time.Millisecond):
		}
	}
	if got.Conv != conv || got.User != x.id || got.On == nil || !*got.On {
		t.Fatalf("y got %+v", got)
	}
	// A burst within the second is dropped but for at most one frame; then,
	// after the second, "on":false gets through.
	for i := 0; i < 5; i++ {
		cx.send(map[string]any{"type": "typing", "conv": conv, "on": true})
	}
	time.Sleep(typingGap)
	cx.send(map[string]any{"type": "typing", "conv": conv, "on": false})
	var typing []frame
	for len(typing) == 0 || *typing[len(typing)-1].On {
		f := cy.next(30 * time.Second)
		if f.Type != "typing" {
			t.Fatalf("y got %+v", f)
		}
		typing = append(typing, f)
	}
	if len(typing) > 2 {
		t.Fatalf("a burst of typing forwarded %d frames", len(typing))
	}
	if before := cx.ping("px"); len(before) != 0 {
		t.Fatalf("the typist got %+v", before)
	}
	cz.send(map[string]any{"type": "typing", "conv": conv})
	if f := cz.next(30 * time.Second); f.Type != "error" || f.Code != "forbidden" {
		t.Fatalf("non-member got %+v", f)
	}
	cz.send(map[string]any{"type": "typing", "conv": "nope"})
	if f := cz.next(30 * time.Second); f.Type != "error" || f.Code != "not_found" {
		t.Fatalf("typing in no conversation got %+v", f)
	}
	cz.send(map[string]any{"type": "typing"})
	if f := cz.next(30 * time.Second); f.Type != "error" || f.Code != "bad_request" {
		t.Fatalf("typing without a conv got %+v", f)
	}
	if _, head := s.history(x, conv, 0); head != 0 {
		t.Fatalf("typing was stored: head %d", head)
	}
}

// typingGap is more than the edge's one second between forwarded typings.
const typingGap = 1100 * time.Millisecond
