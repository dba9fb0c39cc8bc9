package api_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/internal/postgres"
	unreadprojector "github.com/seqchat/seqchat/internal/projector/unread"
	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/internal/wiring"
	"github.com/seqchat/seqchat/unread"
)

// startRoles is start with a chosen configuration and roles.
func startRoles(t *testing.T, cfg config.Config, roles ...wiring.Role) (*env, *wiring.System) {
	t.Helper()
	a, cfg, err := startSystem(t, cfg, roles...)
	if err != nil {
		t.Fatalf("start system: %v", err)
	}
	t.Cleanup(func() { a.Stop() })
	return &env{base: "http://" + a.Addr, pool: a.Pool, cfg: cfg, client: &http.Client{Timeout: 30 * time.Second}}, a
}

// waitUnread waits until each user's unread count in conv is as wanted.
func (e *env) waitUnread(t *testing.T, conv string, want map[user]int64) {
	t.Helper()
	var last string
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		last = ""
		for u, n := range want {
			total, per := e.unread(t, u)
			if per[conv] != n {
				ok = false
			}
			last += fmt.Sprintf("%s: %d (total %d); ", u.Name, per[conv], total)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("unread counts did not settle: %s", last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestUnreadInAGroup(t *testing.T) {
	t.Parallel()
	e := start(t)
	us := make([]user, 5)
	ids := []string{}
	for i := range us {
		us[i] = e.register(t, fmt.Sprintf("grp%d", i))
		ids = append(ids, us[i].ID)
	}
	g := e.createConv(t, us[0], "group", "five", ids[1:]...)
	// 30 messages from three senders.
	for i := 0; i < 30; i++ {
		e.send(t, us[i%3], g.ID, fmt.Sprintf("m%d", i), map[string]int{"i": i})
	}
	// Each member's unread is what the others sent.
	e.waitUnread(t, g.ID, map[user]int64{us[0]: 20, us[1]: 20, us[2]: 20, us[3]: 30, us[4]: 30})
	if list := e.convs(t, us[3]); list[g.ID].Unread == nil || *list[g.ID].Unread != 30 {
		t.Fatalf("conversation list unread for grp3 = %v, want 30", list[g.ID].Unread)
	}

	read := func(u user, seq int64) {
		t.Helper()
		e.do(t, "POST", "/v1/conversations/"+g.ID+"/read", u.Token, map[string]int64{"seq": seq}).ok(t, http.StatusNoContent, nil)
	}
	read(us[3], 20)
	e.waitUnread(t, g.ID, map[user]int64{us[0]: 20, us[1]: 20, us[2]: 20, us[3]: 10, us[4]: 30})
	// Backwards is ignored.
	read(us[3], 5)
	if list := e.convs(t, us[3]); *list[g.ID].ReadSeq != 20 || *list[g.ID].Unread != 10 {
		t.Fatalf("after reading backwards: read_seq %d unread %d, want 20 and 10", *list[g.ID].ReadSeq, *list[g.ID].Unread)
	}
	// Past the head is clamped to it.
	read(us[1], 1000)
	if list := e.convs(t, us[1]); *list[g.ID].ReadSeq != 30 || *list[g.ID].Unread != 0 {
		t.Fatalf("after reading past the head: read_seq %d unread %d, want 30 and 0", *list[g.ID].ReadSeq, *list[g.ID].Unread)
	}
	var rc struct{ Receipts map[string]int64 }
	e.do(t, "GET", "/v1/conversations/"+g.ID+"/receipts", us[0].Token, nil).ok(t, http.StatusOK, &rc)
	if rc.Receipts[us[3].ID] != 20 || rc.Receipts[us[1].ID] != 30 || rc.Receipts[us[4].ID] != 0 {
		t.Fatalf("receipts = %v", rc.Receipts)
	}
	// A later message counts for everyone but its sender, and nothing goes negative.
	e.send(t, us[4], g.ID, "late", "x")
	e.waitUnread(t, g.ID, map[user]int64{us[0]: 21, us[1]: 1, us[2]: 21, us[3]: 11, us[4]: 30})
}

func TestRecall(t *testing.T) {
	t.Parallel()
	cfg := testenv.Config(t)
	// Long enough that the recalls below, made a few requests after the
	// messages, are within it on a loaded machine; the late one waits for
	// it to pass.
	cfg.RecallWindow = 10 * time.Second
	e, _ := startRoles(t, cfg, wiring.API, wiring.Sequencer, wiring.Projector)
	owner, a, b := e.register(t, "rowner"), e.register(t, "reca"), e.register(t, "recb")
	g := e.createConv(t, owner, "group", "recalls", a.ID, b.ID)
	e.send(t, a, g.ID, "a1", "first")        // 1
	a2 := e.send(t, a, g.ID, "a2", "second") // 2
	e.send(t, b, g.ID, "b1", "third")        // 3
	e.waitUnread(t, g.ID, map[user]int64{owner: 3, a: 1, b: 2})

	recall := func(u user, id string, target int64) resp {
		return e.do(t, "POST", "/v1/conversations/"+g.ID+"/recall", u.Token, map[string]any{"id": id, "target": target})
	}
	var got struct{ Seq int64 }
	recall(a, "r1", 1).ok(t, http.StatusOK, &got)
	if got.Seq != 4 {
		t.Fatalf("recall seq = %d, want 4", got.Seq)
	}
	// Recalling twice is not an error and appends nothing.
	var again struct{ Seq int64 }
	recall(a, "r1-again", 1).ok(t, http.StatusOK, &again)
	if again.Seq != 4 || e.head(t, a, g.ID) != 4 {
		t.Fatalf("second recall answered %d, head %d; want 4 and 4", again.Seq, e.head(t, a, g.ID))
	}
	// Permission comes before idempotency: bob may not recall alice's
	// message, recalled already or not.
	recall(b, "rb-recalled", 1).fails(t, http.StatusForbidden, "forbidden")
	p := e.page(t, b, g.ID, "")
	if ev := p.Events[0]; !ev.Recalled || ev.Body != nil {
		t.Fatalf("recalled message still shows: %+v", ev)
	}
	if ev := p.Events[3]; ev.Kind != "recall" || ev.Seq != 4 {
		t.Fatalf("seq 4 = %+v, want the recall event", ev)
	}
	e.waitUnread(t, g.ID, map[user]int64{owner: 2, a: 1, b: 1})
	// The body is erased from Postgres, not merely hidden.
	testenv.Eventually(t, 30*time.Second, "the projector to erase the body", func() bool {
		var erased bool
		e.pool.QueryRow(context.Background(), "SELECT body IS NULL AND recalled FROM events WHERE conv_id=$1 AND seq=1", g.ID).Scan(&erased)
		return erased
	})

	recall(b, "rb1", 2).fails(t, http.StatusForbidden, "forbidden")        // not the sender
	recall(a, "ra-bad", 4).fails(t, http.StatusBadRequest, "bad_request")  // a recall event
	recall(a, "ra-missing", 99).fails(t, http.StatusNotFound, "not_found") // no such seq
	recall(a, "ra-zero", 0).fails(t, http.StatusBadRequest, "bad_request") // not a seq
	// Let a2's window pass: it runs from the ts the sequencer gave a2 (not
	// from when the test sent it, which under load can be much earlier).
	time.Sleep(time.Until(time.UnixMilli(a2.TS).Add(cfg.RecallWindow + 200*time.Millisecond)))
	recall(a, "a2-late", 2).fails(t, http.StatusConflict, "recall_expired")
	recall(owner, "o-late", 2).ok(t, http.StatusOK, &got) // the owner may, at any time
	if got.Seq != 5 {
		t.Fatalf("owner's recall seq = %d, want 5", got.Seq)
	}
	if e.head(t, a, g.ID) != 5 {
		t.Fatalf("refused recalls appended events: head %d", e.head(t, a, g.ID))
	}
}

// The unread projector stopped mid-stream (nothing acked for what it held)
// and restarted gives exact counts; so does a rebuild after Redis lost it all.
func TestUnreadProjectorRedeliveryAndRebuild(t *testing.T) {
	t.Parallel()
	cfg := testenv.Config(t)
	e, a := startRoles(t, cfg, wiring.API, wiring.Sequencer) // no projectors: we run the unread one by hand
	x, y, z := e.register(t, "unx"), e.register(t, "uny"), e.register(t, "unz")
	g := e.createConv(t, x, "group", "crash", y.ID, z.ID)
	for i := 0; i < 200; i++ {
		e.send(t, []user{x, y}[i%2], g.ID, fmt.Sprintf("c%d", i), i)
	}
	e.do(t, "POST", "/v1/conversations/"+g.ID+"/read", z.Token, map[string]int64{"seq": 50}).ok(t, http.StatusNoContent, nil)
	e.do(t, "POST", "/v1/conversations/"+g.ID+"/recall", y.Token, map[string]any{"id": "rc", "target": 2}).ok(t, http.StatusOK, nil)

	ropt, _ := redis.ParseURL(cfg.RedisURL)
	rdb := redis.NewClient(ropt)
	defer rdb.Close()
	store := unread.New(rdb, cfg.RedisPrefix)
	run := func() (stop func()) {
		p := unreadprojector.NewProjector(store, a.Pool, postgres.NewMemberCache(a.Pool, 0), a.NATS.JS, 7, 0, testenv.Logger(t), nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			// As its lease holder does in production: a Run that ends with
			// an error (its consumer must be set up again) runs again.
			for ctx.Err() == nil {
				if err := p.Run(ctx); err != nil {
					t.Log("projector restarts:", err)
				}
			}
		}()
		return func() { cancel(); <-done }
	}
	stop := run()
	testenv.Eventually(t, 30*time.Second, "the projector to start", func() bool {
		n, _ := store.Counts(context.Background(), z.ID)
		return n[g.ID] > 0
	})
	stop()
	stop = run()
	defer stop()
	// x sent 100 (one recalled? no: y's seq 2 is recalled), y 99 counted for x;
	// z read up to 50: of 51..200, 150 messages.
	want := map[user]int64{x: 99, y: 100, z: 150}
	e.waitUnread(t, g.ID, want)
	stop()

	if err := store.Clear(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, per := e.unread(t, x); len(per) != 0 {
		t.Fatalf("after clearing Redis x still has unread %v", per)
	}
	n, err := unreadprojector.Rebuild(context.Background(), store, a.Pool, a.NATS.JS, 64)
	if err != nil || n != 201 {
		t.Fatalf("rebuild replayed %d events, %v; want 201", n, err)
	}
	e.waitUnread(t, g.ID, want)
}
