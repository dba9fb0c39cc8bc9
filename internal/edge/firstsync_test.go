package edge_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/internal/wiring"
)

// startStoppable starts a system whose projectors (fanout among them) run
// in a process of their own, which stop stops and resume starts again:
// live delivery lags as far as a test wants.
func startStoppable(t *testing.T, change func(*config.Config)) (s *system, stop, resume func()) {
	t.Helper()
	cfg := testenv.Config(t)
	if change != nil {
		change(&cfg)
	}
	log := testenv.Logger(t)
	cfg.InstanceID = "e1"
	main, err := wiring.Start(context.Background(), cfg, log, wiring.API, wiring.Sequencer, wiring.Edge)
	if err != nil {
		t.Fatalf("start main: %v", err)
	}
	t.Cleanup(func() { _ = main.Stop() })
	var proj *wiring.System
	resume = func() {
		t.Helper()
		pcfg := cfg
		pcfg.InstanceID, pcfg.HTTPAddr = "p1", "127.0.0.1:0"
		p, err := wiring.Start(context.Background(), pcfg, log, wiring.Projector)
		if err != nil {
			t.Fatalf("start projectors: %v", err)
		}
		proj = p
	}
	stop = func() {
		if proj != nil {
			_ = proj.Stop()
			proj = nil
		}
	}
	t.Cleanup(stop)
	resume()
	return &system{t: t, cfg: cfg, main: main}, stop, resume
}

// sendAll sends n messages on c, at most 500 unanswered (a connection may
// have 1024 in flight), and waits for their acks.
func sendAll(t *testing.T, c *client, conv, prefix string, n int) {
	t.Helper()
	sent, acked := 0, 0
	for acked < n {
		for ; sent < n && sent-acked < 500; sent++ {
			c.send(sendFrame(fmt.Sprintf("%s%04d", prefix, sent), conv, sent))
		}
		f := c.next(30 * time.Second)
		switch f.Type {
		case "ack":
			acked++
		case "error":
			t.Fatalf("send: %+v", f)
		}
	}
}

// A member connects while fanout lags behind a burst of 1,100 messages and
// syncs from 0 once fanout has caught up: it gets the replay 1..1000 and
// synced, no live event of the burst before it and none of the burst after
// it (the sync answered head 1100: the client syncs again from 1000); the
// held events of a conversation the sync did not name follow synced, then
// live delivery goes on.
func TestFirstSyncHoldsStaleLiveEvents(t *testing.T) {
	t.Parallel()
	s, stop, resume := startStoppable(t, func(c *config.Config) {
		c.EdgeFirstSyncWait = 2 * time.Minute // only the sync may release them here
	})
	a, b := s.user("alice"), s.user("bob")
	conv, other := s.direct(a, b), s.group(a, b)
	ca := dial(t, s.main.Addr, a.token)
	ca.sync(map[string]int64{})
	// witness is another of bob's devices, synced before the burst: when
	// it has an event, fanout has handed it to the edge.
	witness := dial(t, s.main.Addr, b.token)
	witness.sync(map[string]int64{})
	seen := map[string]int64{}
	waitEvents := func(want map[string]int64) {
		t.Helper()
		for {
			done := true
			for conv, seq := range want {
				done = done && seen[conv] >= seq
			}
			if done {
				return
			}
			if f := witness.next(30 * time.Second); f.Type == "event" {
				seen[f.Conv] = max(seen[f.Conv], f.Seq)
			}
		}
	}
	// Fanout starts with what is new when it first runs: let it run once.
	sendAll(t, ca, other, "o", 1)
	waitEvents(map[string]int64{other: 1})

	stop()
	const n = 1100
	sendAll(t, ca, conv, "m", n)
	sendAll(t, ca, other, "p", 2)
	cb := dial(t, s.main.Addr, b.token)
	resume()
	waitEvents(map[string]int64{conv: n, other: 3})

	cb.send(map[string]any{"type": "sync", "id": "first", "cursors": map[string]int64{conv: 0}})
	for want := int64(1); ; want++ {
		f := cb.next(20 * time.Second)
		if f.Type == "synced" {
			if want != 1001 || f.Heads[conv] != n {
				t.Fatalf("synced after %d events with heads %v, want 1000 events and head %d", want-1, f.Heads, n)
			}
			break
		}
		if f.Type != "event" || f.Conv != conv || f.Seq != want {
			t.Fatalf("before synced: want replayed event %d of %s, got %+v", want, conv, f)
		}
	}
	// The other conversation's held events, then live ones of both.
	// (Fanout may hand event 1 on again: it was in its last batch when it
	// stopped.)
	for want := int64(0); want < 3; want++ {
		f := cb.next(30 * time.Second)
		if want == 0 && f.Seq == 2 {
			want = 1
		}
		if f.Type != "event" || f.Conv != other || f.Seq != want+1 {
			t.Fatalf("after synced: want held event %d of %s, got %+v", want+1, other, f)
		}
	}
	ca.send(sendFrame("live", conv, n))
	if f := cb.next(30 * time.Second); f.Type != "event" || f.Conv != conv || f.Seq != n+1 || f.ID != "live" {
		t.Fatalf("after synced: want live event %d, got %+v", n+1, f)
	}
	// Syncing again from where the replay stopped gives the rest.
	got, heads := cb.sync(map[string]int64{conv: 1000})
	checkSeqs(t, "second sync", got, 1001, nil)
	if len(got) != n+1-1000 || heads[conv] != n+1 {
		t.Fatalf("second sync: %d events, heads %v; want %d and head %d", len(got), heads, n+1-1000, n+1)
	}
}

// A connection that sends no sync gets its held live events once the wait
// for the first sync is over, and later ones at once; its own commands are
// answered meanwhile.
func TestFirstSyncWaitReleases(t *testing.T) {
	t.Parallel()
	// Long enough that alice's three sends and bob's own one are answered
	// before it ends on a loaded machine (bob's ack must come first).
	const wait = 5 * time.Second
	s := startWith(t, func(c *config.Config) { c.EdgeFirstSyncWait = wait })
	a, b := s.user("alice"), s.user("bob")
	conv := s.direct(a, b)
	ca := dial(t, s.main.Addr, a.token)
	ca.sync(map[string]int64{})
	dialed := time.Now()
	cb := dial(t, s.main.Addr, b.token)
	sendAll(t, ca, conv, "m", 3)
	// bob's own send is answered at once, and its seq is not repeated as
	// an event later.
	cb.send(sendFrame("own", conv, 0))
	if f := cb.next(15 * time.Second); f.Type != "ack" || f.Seq != 4 {
		t.Fatalf("want ack 4 before the first sync, got %+v", f)
	}
	for want := int64(1); want <= 3; want++ {
		f := cb.next(30 * time.Second)
		if f.Type != "event" || f.Seq != want {
			t.Fatalf("want held event %d, got %+v", want, f)
		}
		if since := time.Since(dialed); since < wait {
			t.Fatalf("event %d arrived %v after connecting, before the first-sync wait of %v", want, since, wait)
		}
	}
	ca.send(sendFrame("later", conv, 4))
	if f := cb.next(15 * time.Second); f.Type != "event" || f.Seq != 5 || f.ID != "later" {
		t.Fatalf("want live event 5 after the release, got %+v", f)
	}
}
