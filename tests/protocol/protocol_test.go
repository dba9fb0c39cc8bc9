// Package protocol_test checks the protocol (docs/protocol.md) from outside,
// as a client sees it: REST and the WebSocket only, against the server at
// CHAT_TEST_SERVER_URL or, unset, a one-process server of its own. CI runs
// it against a chatd that the load generator keeps busy (.ci/run), where
// several of these checks once failed while they passed on a quiet machine.
package protocol_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestProtocol(t *testing.T) {
	s := &server{t: t, base: serverURL(t)}
	retries.Store(0)
	t.Cleanup(func() {
		if n := retries.Load(); n > 0 {
			t.Logf("%d commands answered unavailable or rate_limited and sent again", n)
		}
	})
	for _, c := range []struct {
		name string
		fn   func(t *testing.T, s *server)
	}{
		{"GroupFanout", checkGroupFanout},
		{"SyncReplay", checkSyncReplay},
		{"EmptySync", checkEmptySync},
		{"SendReadYourWrites", checkSendReadYourWrites},
		{"RecallReadBack", checkRecallReadBack},
		{"Resend", checkResend},
		{"Unread", checkUnread},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t, &server{t: t, base: s.base})
		})
	}
}

// arrivals reads n arrivals of conv on c, an ack counting as the arrival of
// its seq, and checks they are seqs first..first+n-1 in order (ordering:
// no gap, no duplicate).
func arrivals(t *testing.T, c *socket, conv string, first int64, n int) []frame {
	t.Helper()
	got, err := collect(c, conv, first, n, nil)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// collect is arrivals for goroutines other than the test's. resend, if
// not nil, sends a command of the connection's again: the protocol's answer
// to unavailable and rate_limited.
func collect(c *socket, conv string, first int64, n int, resend func(id string) error) ([]frame, error) {
	got := make([]frame, 0, n)
	for len(got) < n {
		f, err := c.read(fmt.Sprintf("seq %d of %s", first+int64(len(got)), conv))
		if err != nil {
			return got, err
		}
		if f.Type == "error" && resend != nil && (f.Code == "unavailable" || f.Code == "rate_limited") {
			retries.Add(1)
			if err := resend(f.ID); err != nil {
				return got, err
			}
			continue
		}
		if f.Type == "error" {
			return got, fmt.Errorf("%s: error frame %+v", c.name, f)
		}
		if (f.Type != "event" && f.Type != "ack") || f.Conv != conv {
			continue // receipts, presence
		}
		want := first + int64(len(got))
		if f.Type == "ack" && f.Seq < want && resend != nil {
			continue // the answer to a resend of a command whose seq came already
		}
		if f.Seq != want {
			return got, fmt.Errorf("%s: arrival %d of %s has seq %d, want %d (%+v)", c.name, len(got), conv, f.Seq, want, f)
		}
		got = append(got, f)
	}
	return got, nil
}

// Four members of a group, each on its own socket, send five messages each
// at once: every socket sees seqs 1..20 in order, its own as acks, the
// others' as events from their senders, and history holds the same.
func checkGroupFanout(t *testing.T, s *server) {
	owner, m1, m2, m3 := s.user("fo"), s.user("fa"), s.user("fb"), s.user("fc")
	members := []user{owner, m1, m2, m3}
	g := s.group(owner, m1, m2, m3)
	socks := make([]*socket, len(members))
	for i, u := range members {
		socks[i] = s.dial(u)
		if got, heads := socks[i].sync("s0", map[string]int64{g: 0}); len(got) != 0 || heads[g] != 0 {
			t.Fatalf("sync of a new group: %d events, heads %v", len(got), heads)
		}
	}
	const per = 5
	n := per * len(members)
	var wg sync.WaitGroup
	results := make([][]frame, len(members))
	errs := make([]error, len(members))
	// A command answered unavailable is sent again: its event may then
	// come as an event before the second answer's ack.
	resent := make([]map[string]bool, len(members))
	for i := range resent {
		resent[i] = map[string]bool{}
	}
	for i, c := range socks {
		wg.Go(func() {
			send := func(id string) error {
				resent[i][id] = true
				return c.write(map[string]any{"type": "send", "id": id, "conv": g, "body": map[string]any{"text": "fanout"}})
			}
			for k := range per {
				id := fmt.Sprintf("g%d_%d", i, k)
				if errs[i] = c.write(map[string]any{"type": "send", "id": id, "conv": g, "body": map[string]any{"text": "fanout"}}); errs[i] != nil {
					return
				}
			}
			results[i], errs[i] = collect(c, g, 1, n, send)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	from := map[int64]string{}
	for i, got := range results {
		for _, f := range got {
			own := f.Type == "ack"
			if own && !strings.HasPrefix(f.ID, fmt.Sprintf("g%d_", i)) {
				t.Fatalf("%s: ack of someone else's command %+v", socks[i].name, f)
			}
			if !own && f.From == members[i].id && !resent[i][f.ID] {
				t.Fatalf("%s: its own message came as an event, not an ack: %+v", socks[i].name, f)
			}
			if !own {
				if prev, ok := from[f.Seq]; ok && prev != f.From {
					t.Fatalf("seq %d from %s on one socket, %s on another", f.Seq, prev, f.From)
				}
				from[f.Seq] = f.From
			}
		}
	}
	p := s.after(owner, g, 0, 200)
	if len(p.Events) != n || p.Head != int64(n) {
		t.Fatalf("history: %d events, head %d; want %d", len(p.Events), p.Head, n)
	}
	for _, e := range p.Events {
		if want, ok := from[e.Seq]; ok && e.From != want {
			t.Fatalf("history has seq %d from %s, sockets saw %s", e.Seq, e.From, want)
		}
	}
}

// A member who was away syncs: exactly the events after its cursor, in
// order, then synced with the head; from a later cursor only the rest; then
// live events, starting right after the head.
func checkSyncReplay(t *testing.T, s *server) {
	a, b := s.user("ra"), s.user("rb")
	conv := s.direct(a, b)
	const n = 30
	for i := range n {
		if seq := s.send(a, conv, fmt.Sprintf("r%d", i), "replay"); seq != int64(i+1) {
			t.Fatalf("send %d got seq %d", i, seq)
		}
	}
	c := s.dial(b)
	got, heads := c.sync("s1", map[string]int64{conv: 0})
	if len(got) != n || heads[conv] != n {
		t.Fatalf("sync from 0: %d events, heads %v; want %d and head %d", len(got), heads, n, n)
	}
	for i, f := range got {
		if f.Conv != conv || f.Seq != int64(i+1) || f.ID != fmt.Sprintf("r%d", i) || f.From != a.id || f.Kind != "message" {
			t.Fatalf("replayed event %d: %+v", i, f)
		}
	}
	got, heads = c.sync("s2", map[string]int64{conv: 25})
	if len(got) != n-25 || heads[conv] != n || got[0].Seq != 26 {
		t.Fatalf("sync from 25: %d events (first %+v), heads %v", len(got), got, heads)
	}
	seq := s.send(a, conv, "live", "live")
	if f := arrivals(t, c, conv, n+1, 1)[0]; f.Type != "event" || f.Seq != seq || f.ID != "live" {
		t.Fatalf("live after sync: %+v, want event %d", f, seq)
	}
}

// An empty sync replays nothing and answers synced with empty heads, also
// for a user whose conversations have traffic; live events follow it, in
// order (among them, if fanout was behind when the socket opened, the ones
// the edge held for a conversation the sync did not name).
func checkEmptySync(t *testing.T, s *server) {
	a, b := s.user("ea"), s.user("eb")
	conv := s.direct(a, b)
	for i := range 5 {
		s.send(a, conv, fmt.Sprintf("e%d", i), "before")
	}
	c := s.dial(b)
	got, heads := c.sync("empty", map[string]int64{})
	if len(got) != 0 || len(heads) != 0 {
		t.Fatalf("empty sync: %d events, heads %v; want none", len(got), heads)
	}
	seq := s.send(a, conv, "after", "after")
	var prev int64
	for {
		f := c.next("the event after the empty sync")
		if f.Type != "event" || f.Conv != conv {
			t.Fatalf("after the empty sync: unexpected %+v", f)
		}
		if prev > 0 && f.Seq != prev+1 {
			t.Fatalf("after the empty sync: seq %d after %d", f.Seq, prev)
		}
		if prev = f.Seq; f.Seq == seq {
			if f.ID != "after" {
				t.Fatalf("after the empty sync: %+v at seq %d", f, seq)
			}
			return
		}
	}
}

// Read-your-writes (invariant 4): once a send is answered with its seq,
// a history read by the other member, at once, has it; for REST and for
// socket sends.
func checkSendReadYourWrites(t *testing.T, s *server) {
	a, b := s.user("wa"), s.user("wb")
	conv := s.direct(a, b)
	c := s.dial(a)
	c.sync("s", map[string]int64{})
	for i := range 20 {
		id := fmt.Sprintf("w%d", i)
		var seq int64
		if i%2 == 0 {
			seq = s.send(a, conv, id, "ryw")
		} else {
			ack, _ := c.sendWS(conv, id, "ryw")
			seq = ack.Seq
		}
		p := s.after(b, conv, seq-1, 1)
		if len(p.Events) != 1 || p.Events[0].Seq != seq || p.Events[0].ID != id || p.Head < seq {
			t.Fatalf("read right after the answer to %s (seq %d): %+v", id, seq, p)
		}
	}
}

// An owner's recall, read back at once by another member: the message shows
// recalled and without its body, the recall event is at its seq. The same
// for a sender recalling in a direct conversation.
func checkRecallReadBack(t *testing.T, s *server) {
	owner, sender, reader := s.user("co"), s.user("cs"), s.user("cr")
	g := s.group(owner, sender, reader)
	a, b := s.user("ca"), s.user("cb")
	d := s.direct(a, b)
	check := func(who user, conv string, target, rseq int64) {
		t.Helper()
		p := s.after(who, conv, target-1, 200)
		var msg, rec *event
		for i := range p.Events {
			switch p.Events[i].Seq {
			case target:
				msg = &p.Events[i]
			case rseq:
				rec = &p.Events[i]
			}
		}
		if msg == nil || !msg.Recalled || (len(msg.Body) > 0 && string(msg.Body) != "null") {
			t.Fatalf("right after the recall (seq %d) of %s#%d, history shows %+v", rseq, conv, target, msg)
		}
		if rec == nil || rec.Kind != "recall" || rec.Target != target {
			t.Fatalf("right after the recall of %s#%d, history shows the recall as %+v", conv, target, rec)
		}
	}
	for i := range 10 {
		target := s.send(sender, g, fmt.Sprintf("m%d", i), "to recall")
		var r struct {
			Seq int64 `json:"seq"`
		}
		s.command("/v1/conversations/"+g+"/recall", owner.token, map[string]any{"id": fmt.Sprintf("rc%d", i), "target": target}, &r)
		check(reader, g, target, r.Seq)

		target = s.send(a, d, fmt.Sprintf("m%d", i), "to recall")
		s.command("/v1/conversations/"+d+"/recall", a.token, map[string]any{"id": fmt.Sprintf("rc%d", i), "target": target}, &r)
		check(b, d, target, r.Seq)
	}
}

// The same command id again, over REST and on two sockets, answers the
// same seq, and the event exists once; another sender's same id is
// another command.
func checkResend(t *testing.T, s *server) {
	a, b := s.user("ia"), s.user("ib")
	conv := s.direct(a, b)
	const id = "01JPROTOCOLRESEND"
	seq := s.send(a, conv, id, "once")
	for range 2 {
		if again := s.send(a, conv, id, "once"); again != seq {
			t.Fatalf("REST resend answered seq %d, first %d", again, seq)
		}
	}
	for range 2 {
		c := s.dial(a)
		c.sync("s", map[string]int64{})
		if ack, _ := c.sendWS(conv, id, "once"); ack.Seq != seq {
			t.Fatalf("socket resend answered seq %d, first %d", ack.Seq, seq)
		}
	}
	other := s.send(b, conv, id, "another sender")
	if other == seq {
		t.Fatalf("another sender's command with the same id got the same seq %d", seq)
	}
	p := s.after(a, conv, 0, 200)
	count := 0
	for _, e := range p.Events {
		if e.ID == id && e.From == a.id {
			count++
		}
	}
	if count != 1 || len(p.Events) != 2 {
		t.Fatalf("history after the resends: %d events, %d of the command; want 2 and 1", len(p.Events), count)
	}
}

// Unread counts: the other member's messages count, one's own do not, a
// read pointer clears up to it (the counts are a projection: polled).
func checkUnread(t *testing.T, s *server) {
	a, b := s.user("ua"), s.user("ub")
	conv := s.direct(a, b)
	for i := range 5 {
		s.send(a, conv, fmt.Sprintf("u%d", i), "unread")
	}
	s.send(b, conv, "mine", "own messages do not count")
	type unread struct {
		Total         int64            `json:"total"`
		Conversations map[string]int64 `json:"conversations"`
	}
	get := func(u user) unread {
		var r unread
		s.must(200, "GET", "/v1/unread", u.token, nil, &r)
		return r
	}
	eventually(t, "bob's unread count reaches 5", func() (bool, any) {
		r := get(b)
		return r.Total == 5 && r.Conversations[conv] == 5, r
	})
	eventually(t, "alice's unread count is 1 (bob's message, not her own)", func() (bool, any) {
		r := get(a)
		return r.Total == 1 && r.Conversations[conv] == 1, r
	})
	s.must(204, "POST", "/v1/conversations/"+conv+"/read", b.token, map[string]int64{"seq": 3}, nil)
	eventually(t, "bob's unread count drops to 2 after reading up to 3", func() (bool, any) {
		r := get(b)
		return r.Total == 2 && r.Conversations[conv] == 2, r
	})
	eventually(t, "bob's conversation list shows read_seq 3, last_seq 6, unread 2", func() (bool, any) {
		var list struct {
			Conversations []struct {
				ID      string `json:"id"`
				LastSeq int64  `json:"last_seq"`
				ReadSeq int64  `json:"read_seq"`
				Unread  int64  `json:"unread"`
			} `json:"conversations"`
		}
		s.must(200, "GET", "/v1/conversations", b.token, nil, &list)
		l := list.Conversations
		return len(l) == 1 && l[0].ID == conv && l[0].ReadSeq == 3 && l[0].LastSeq == 6 && l[0].Unread == 2, list
	})
	s.must(204, "POST", "/v1/conversations/"+conv+"/read", b.token, map[string]int64{"seq": 6}, nil)
	eventually(t, "bob's unread count drops to 0", func() (bool, any) {
		r := get(b)
		_, listed := r.Conversations[conv]
		return r.Total == 0 && !listed, r
	})
}
