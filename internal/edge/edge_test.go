package edge_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/seqchat/seqchat/internal/testenv"
)

func msgID(prefix string) func(int64) string {
	return func(seq int64) string { return fmt.Sprintf("%s%04d", prefix, seq-1) }
}

// Two users with two connections each, on two edges: the sender's
// connection gets 200 acks in order, every other connection the 200 events
// in order, nothing twice.
func TestLiveDeliveryInOrder(t *testing.T) {
	t.Parallel()
	s := start(t)
	a, b := s.user("alice"), s.user("bob")
	conv := s.direct(a, b)
	a1, a2 := dial(t, s.main.Addr, a.token), dial(t, s.edge.Addr, a.token)
	b1, b2 := dial(t, s.main.Addr, b.token), dial(t, s.edge.Addr, b.token)
	for _, c := range []*client{a1, a2, b1, b2} {
		if got, heads := c.sync(map[string]int64{conv: 0}); len(got) != 0 || heads[conv] != 0 {
			t.Fatalf("sync of an empty conversation: %v %v", got, heads)
		}
	}
	const n = 200
	for i := range n {
		a1.send(sendFrame(fmt.Sprintf("m%04d", i), conv, i))
	}
	acks := make([]frame, 0, n)
	for len(acks) < n {
		f := a1.next(30 * time.Second)
		if f.Type != "ack" {
			t.Fatalf("sender: unexpected frame %+v", f)
		}
		acks = append(acks, f)
	}
	checkSeqs(t, "sender's acks", acks, 1, msgID("m"))
	var wg sync.WaitGroup
	for name, c := range map[string]*client{"alice's other device": a2, "bob 1": b1, "bob 2": b2} {
		wg.Go(func() { checkSeqs(t, name, c.events(n), 1, msgID("m")) })
	}
	wg.Wait()
	// One more: the next thing everyone sees is 201, not a late duplicate.
	a1.send(sendFrame("last", conv, n))
	if f := a1.next(15 * time.Second); f.Type != "ack" || f.Seq != n+1 {
		t.Fatalf("sender: want ack %d, got %+v", n+1, f)
	}
	for _, c := range []*client{a2, b1, b2} {
		if f := c.next(15 * time.Second); f.Type != "event" || f.Seq != n+1 || f.ID != "last" {
			t.Fatalf("want event %d, got %+v", n+1, f)
		}
	}
	if got := s.allHistory(a, conv); len(got) != n+1 {
		t.Fatalf("history has %d events, want %d", len(got), n+1)
	}
}

// The same send three times on one connection and once on another edge:
// one event, four acks with one seq.
func TestResend(t *testing.T) {
	t.Parallel()
	s := start(t)
	a, b := s.user("alice"), s.user("bob")
	conv := s.direct(a, b)
	c1, c2 := dial(t, s.main.Addr, a.token), dial(t, s.edge.Addr, a.token)
	f := sendFrame("01JRESEND", conv, 1)
	for range 3 {
		c1.send(f)
	}
	c2.send(f)
	var seqs []int64
	for range 3 {
		got := c1.next(30 * time.Second)
		if got.Type != "ack" || got.ID != "01JRESEND" {
			t.Fatalf("connection 1: want an ack, got %+v", got)
		}
		seqs = append(seqs, got.Seq)
	}
	for {
		got := c2.next(30 * time.Second)
		if got.Type == "event" {
			continue // it may see the event its twin appended first
		}
		if got.Type != "ack" || got.ID != "01JRESEND" {
			t.Fatalf("connection 2: want an ack, got %+v", got)
		}
		seqs = append(seqs, got.Seq)
		break
	}
	for _, seq := range seqs {
		if seq != 1 {
			t.Fatalf("acks carry seqs %v, want all 1", seqs)
		}
	}
	if got := s.allHistory(a, conv); len(got) != 1 {
		t.Fatalf("history has %d events, want 1: %+v", len(got), got)
	}
}

// B goes away, A sends 500, B comes back on the other edge and syncs from
// its cursor: exactly the 500 it missed, in order, then live ones.
func TestOfflineReplay(t *testing.T) {
	t.Parallel()
	s := start(t)
	a, b := s.user("alice"), s.user("bob")
	conv := s.direct(a, b)
	ca, cb := dial(t, s.main.Addr, a.token), dial(t, s.main.Addr, b.token)
	ca.sync(map[string]int64{conv: 0})
	cb.sync(map[string]int64{conv: 0})
	for i := range 5 {
		ca.send(sendFrame(fmt.Sprintf("m%04d", i), conv, i))
	}
	checkSeqs(t, "bob before", cb.events(5), 1, msgID("m"))
	cursor := int64(5)
	cb.ws.Close()

	const n = 500
	for i := 5; i < 5+n; i++ {
		ca.send(sendFrame(fmt.Sprintf("m%04d", i), conv, i))
	}
	for i := 0; i < 5+n; {
		if f := ca.next(30 * time.Second); f.Type == "ack" {
			i++
		}
	}
	cb = dial(t, s.edge.Addr, b.token)
	got, heads := cb.sync(map[string]int64{conv: cursor})
	if len(got) != n || heads[conv] != cursor+n {
		t.Fatalf("sync replayed %d events with head %d, want %d with head %d", len(got), heads[conv], n, cursor+n)
	}
	checkSeqs(t, "replay", got, cursor+1, msgID("m"))
	for i := range 3 {
		ca.send(sendFrame(fmt.Sprintf("live%d", i), conv, i))
	}
	checkSeqs(t, "live after sync", cb.events(3), cursor+n+1, func(seq int64) string { return fmt.Sprintf("live%d", seq-cursor-n-1) })
}

// Sync answers for conversations while messages keep coming: what was
// before comes in the replay, what comes after comes live, nothing twice
// and nothing missing.
func TestSyncDuringTraffic(t *testing.T) {
	t.Parallel()
	s := start(t)
	a, b := s.user("alice"), s.user("bob")
	conv := s.direct(a, b)
	ca := dial(t, s.main.Addr, a.token)
	const n = 400
	go func() {
		for i := range n {
			ca.send(sendFrame(fmt.Sprintf("m%04d", i), conv, i))
		}
	}()
	// Let some of them in first, then sync from 0 mid-stream.
	for i := 0; i < 50; {
		if ca.next(10*time.Second).Type == "ack" {
			i++
		}
	}
	cb := dial(t, s.edge.Addr, b.token)
	replay, _ := cb.sync(map[string]int64{conv: 0})
	// No live event comes ahead of the replay, which starts at seq 1.
	checkSeqs(t, "replay", replay, 1, msgID("m"))
	live := cb.events(n - len(replay))
	checkSeqs(t, "live", live, int64(len(replay))+1, msgID("m"))
}

// An edge stops while a client sends: every acked message is in history
// once, and a client that resends the unacked ones through the other edge
// ends with seqs 1..n and no gap.
func TestEdgeStopped(t *testing.T) {
	t.Parallel()
	s := start(t)
	a, b := s.user("alice"), s.user("bob")
	conv := s.direct(a, b)
	c := dial(t, s.edge.Addr, a.token)
	const n = 300
	acked := map[string]int64{}
	go func() {
		for i := range n {
			b, _ := json.Marshal(sendFrame(fmt.Sprintf("m%04d", i), conv, i))
			if c.ws.WriteMessage(websocket.TextMessage, b) != nil {
				return
			}
		}
	}()
	stopped := false
	for f := range c.frames {
		switch f.Type {
		case "ack":
			acked[f.ID] = f.Seq
		case "error", "event":
			// unavailable while the edge shuts down: resent below
		default:
			t.Fatalf("unexpected frame %+v", f)
		}
		if len(acked) == 50 && !stopped {
			stopped = true
			go s.edge.Stop()
		}
	}
	if !stopped {
		t.Fatal("all frames read without stopping the edge")
	}
	t.Logf("%d of %d acked before the edge stopped", len(acked), n)
	// Every acked one is durable and unique.
	hist := s.allHistory(a, conv)
	byID := map[string]int64{}
	for _, e := range hist {
		if _, dup := byID[e.ID]; dup {
			t.Fatalf("id %s twice in history", e.ID)
		}
		byID[e.ID] = e.Seq
	}
	for id, seq := range acked {
		if byID[id] != seq {
			t.Fatalf("acked %s at seq %d, history has it at %d", id, seq, byID[id])
		}
	}
	// Resend what has no ack, through the other edge.
	c2 := dial(t, s.main.Addr, a.token)
	missing := 0
	for i := range n {
		id := fmt.Sprintf("m%04d", i)
		if _, ok := acked[id]; !ok {
			c2.send(sendFrame(id, conv, i))
			missing++
		}
	}
	for missing > 0 {
		f := c2.next(30 * time.Second)
		if f.Type != "ack" {
			continue // events of its own earlier, unacked sends
		}
		acked[f.ID] = f.Seq
		missing--
	}
	hist = s.allHistory(a, conv)
	if len(hist) != n {
		t.Fatalf("history has %d events, want %d", len(hist), n)
	}
	for i, e := range hist {
		if e.Seq != int64(i+1) {
			t.Fatalf("history position %d holds seq %d", i, e.Seq)
		}
		if acked[e.ID] != e.Seq {
			t.Fatalf("seq %d (%s) was acked as %d", e.Seq, e.ID, acked[e.ID])
		}
	}
	if len(acked) != n {
		t.Fatalf("%d acks, want %d", len(acked), n)
	}
}

// Bad input gets an error frame with the protocol's code, the connection
// stays usable and nothing is appended.
func TestBadInput(t *testing.T) {
	t.Parallel()
	s := start(t)
	a, b, c, d := s.user("alice"), s.user("bob"), s.user("carol"), s.user("dave")
	conv := s.direct(a, b)
	foreign := s.direct(c, d)
	cl := dial(t, s.main.Addr, a.token)
	big := strings.Repeat("x", 17<<10)
	cases := []struct {
		name  string
		frame string
		code  string
	}{
		{"malformed JSON", `{"type":"send",`, "bad_request"},
		{"not an object", `[1,2]`, "bad_request"},
		{"no type", `{"id":"x1"}`, "bad_request"},
		{"unknown type", `{"type":"shout","id":"x1"}`, "bad_request"},
		{"send without body", `{"type":"send","id":"x1","conv":"` + conv + `"}`, "bad_request"},
		{"send without conv", `{"type":"send","id":"x1","body":{"t":1}}`, "bad_request"},
		{"send without id", `{"type":"send","conv":"` + conv + `","body":{"t":1}}`, "bad_request"},
		{"bad id", `{"type":"send","id":"no spaces!","conv":"` + conv + `","body":{"t":1}}`, "bad_request"},
		{"id too long", `{"type":"send","id":"` + strings.Repeat("a", 65) + `","conv":"` + conv + `","body":{"t":1}}`, "bad_request"},
		{"wrong field type", `{"type":"send","id":"x1","conv":5,"body":{"t":1}}`, "bad_request"},
		{"bad conv id", `{"type":"send","id":"x1","conv":"a.b","body":{"t":1}}`, "bad_request"},
		{"not a member", `{"type":"send","id":"x1","conv":"` + foreign + `","body":{"t":1}}`, "forbidden"},
		{"unknown conversation", `{"type":"send","id":"x1","conv":"NOSUCHCONV","body":{"t":1}}`, "not_found"},
		{"body too large", `{"type":"send","id":"x1","conv":"` + conv + `","body":{"t":"` + big + `"}}`, "too_large"},
		{"read without seq", `{"type":"read","id":"x1","conv":"` + conv + `"}`, "bad_request"},
		{"read not a member", `{"type":"read","id":"x1","conv":"` + foreign + `","seq":1}`, "forbidden"},
		{"recall without target", `{"type":"recall","id":"x1","conv":"` + conv + `"}`, "bad_request"},
		{"sync not a member", `{"type":"sync","id":"x1","cursors":{"` + conv + `":0,"` + foreign + `":0}}`, "forbidden"},
		{"sync unknown conversation", `{"type":"sync","id":"x1","cursors":{"NOSUCHCONV":0}}`, "not_found"},
		{"sync negative cursor", `{"type":"sync","id":"x1","cursors":{"` + conv + `":-1}}`, "bad_request"},
	}
	for i, tc := range cases {
		cl.raw([]byte(tc.frame))
		// Some answers come from the sequencer or Postgres, after a pong
		// would: wait for the error, then check the connection still answers.
		if got := cl.next(15 * time.Second); got.Type != "error" || got.Code != tc.code {
			t.Errorf("%s: want error %s, got %+v", tc.name, tc.code, got)
		}
		if got := cl.ping(fmt.Sprintf("p%d", i)); len(got) != 0 {
			t.Errorf("%s: frames besides the error: %+v", tc.name, got)
		}
	}
	if _, head := s.history(a, conv, 0); head != 0 {
		t.Fatalf("bad input appended: head is %d", head)
	}
	// A good command still works on the same connection.
	cl.send(sendFrame("ok1", conv, 1))
	if f := cl.next(15 * time.Second); f.Type != "ack" || f.Seq != 1 {
		t.Fatalf("want ack 1, got %+v", f)
	}
	// read moves the pointer and answers an ack without seq.
	cl.send(map[string]any{"type": "read", "id": "r1", "conv": conv, "seq": 1})
	if f := cl.next(15 * time.Second); f.Type != "ack" || f.ID != "r1" || f.Seq != 0 {
		t.Fatalf("want read ack, got %+v", f)
	}
	// recall is refused until the recall issue lands, but answered.
	cl.send(map[string]any{"type": "recall", "id": "rc1", "conv": conv, "target": 1})
	if f := cl.next(15 * time.Second); (f.Type != "error" || f.ID != "rc1") && (f.Type != "ack" || f.ID != "rc1") {
		t.Fatalf("want an answer to recall, got %+v", f)
	}

	// A frame over 64 KiB closes the connection with 1009.
	cl.raw([]byte(`{"type":"ping","pad":"` + strings.Repeat("x", 65<<10) + `"}`))
	for f := range cl.frames {
		t.Fatalf("after an oversize frame: unexpected %+v", f)
	}
	if err := <-cl.err; !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("after an oversize frame: want close 1009, got %v", err)
	}

	// No token, or a bad one: 401 before any upgrade.
	for _, q := range []string{"", "token=nope"} {
		u := url.URL{Scheme: "ws", Host: s.main.Addr, Path: "/v1/ws", RawQuery: q}
		_, resp, err := websocket.DefaultDialer.Dial(u.String(), nil)
		if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("dial with %q: want 401, got %v %v", q, err, resp)
		}
	}
	// A logged-out token no longer connects.
	if code := s.do("DELETE", "/v1/sessions/current", a.token, nil, nil); code != 204 {
		t.Fatalf("logout: %d", code)
	}
	u := url.URL{Scheme: "ws", Host: s.edge.Addr, Path: "/v1/ws", RawQuery: "token=" + a.token}
	if _, resp, err := websocket.DefaultDialer.Dial(u.String(), nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("dial after logout: want 401, got %v %v", err, resp)
	}
}

// Membership events reach the new member and the one who left, later
// messages only the members; friends show online while connected.
func TestMembershipAndPresence(t *testing.T) {
	t.Parallel()
	s := start(t)
	a, b, c := s.user("alice"), s.user("bob"), s.user("carol")
	var g struct{ ID string }
	if code := s.do("POST", "/v1/conversations", a.token, map[string]any{"kind": "group", "title": "g", "members": []string{b.id}}, &g); code != 201 {
		t.Fatalf("create group: %d", code)
	}
	cb, cc := dial(t, s.edge.Addr, b.token), dial(t, s.main.Addr, c.token)
	// An empty sync: live events flow from its answer on.
	cb.sync(map[string]int64{})
	cc.sync(map[string]int64{})
	if code := s.do("POST", "/v1/conversations/"+g.ID+"/members", a.token, map[string]string{"user_id": c.id}, nil); code != 204 {
		t.Fatalf("add member: %d", code)
	}
	for _, cl := range []*client{cb, cc} {
		if f := cl.next(15 * time.Second); f.Type != "event" || f.Kind != "member_joined" || f.Seq != 1 {
			t.Fatalf("want member_joined 1, got %+v", f)
		}
	}
	if code := s.do("DELETE", "/v1/conversations/"+g.ID+"/members/"+b.id, a.token, nil, nil); code != 204 {
		t.Fatalf("remove member: %d", code)
	}
	for _, cl := range []*client{cb, cc} {
		if f := cl.next(15 * time.Second); f.Type != "event" || f.Kind != "member_left" || f.Seq != 2 {
			t.Fatalf("want member_left 2, got %+v", f)
		}
	}
	ca := dial(t, s.main.Addr, a.token)
	ca.send(sendFrame("after", g.ID, 0))
	if f := cc.next(15 * time.Second); f.Type != "event" || f.Seq != 3 {
		t.Fatalf("carol: want event 3, got %+v", f)
	}
	if got := cb.ping("p"); len(got) != 0 {
		t.Fatalf("bob got frames after leaving: %+v", got)
	}

	// online in GET /v1/friends follows the connections.
	if code := s.do("PUT", "/v1/friends/"+c.id, a.token, nil, nil); code != 204 {
		t.Fatalf("add friend: %d", code)
	}
	online := func() bool {
		var r struct {
			Friends []struct {
				ID     string `json:"id"`
				Online bool   `json:"online"`
			} `json:"friends"`
		}
		s.do("GET", "/v1/friends", a.token, nil, &r)
		return len(r.Friends) == 1 && r.Friends[0].Online
	}
	if !online() {
		t.Fatal("carol is connected but not online")
	}
	cc.ws.Close()
	testenv.Eventually(t, 30*time.Second, "carol offline", func() bool { return !online() })
}
