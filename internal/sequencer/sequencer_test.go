package sequencer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/internal/postgres"
	"github.com/seqchat/seqchat/internal/sequencer"
	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/timeline"
)

type rig struct {
	atomic    bool
	pipelined bool // only with one sequencer at a time: Options.Pipelined
	takers    []sequencer.Taker
	cfg       config.Config
	pool      *pgxpool.Pool
	nc        *timeline.Conn
	tl        *timeline.Log
	sub       *timeline.Submitter
}

func newRig(t testing.TB, tweak func(*config.Config)) *rig {
	t.Helper()
	cfg := testenv.Config(t)
	cfg.StreamStorage = "file"
	cfg.Partitions = 4
	if tweak != nil {
		tweak(&cfg)
	}
	ctx := testenv.Context(t, 2*time.Minute)
	pool, err := postgres.Open(ctx, cfg.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	nc, err := timeline.Connect(ctx, cfg.NATSURL, "", timeline.Sync{}, t.Name(), testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if err := timeline.Ensure(ctx, nc.JS, timeline.Settings{Storage: cfg.StreamStorage, DuplicateWindow: cfg.DuplicateWindow, LeaseTTL: cfg.LeaseTTL, FastBatches: true}); err != nil {
		t.Fatal(err)
	}
	sub, err := timeline.NewSubmitter(ctx, nc.NC, nc.JS, cfg.Partitions)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	return &rig{cfg: cfg, pool: pool, nc: nc, tl: timeline.New(nc.NC, nc.JS), sub: sub}
}

// start runs a sequencer until the returned stop is called (or the test ends).
func (r *rig) start(t testing.TB, id string) (stop func()) {
	t.Helper()
	return r.startLog(t, id, testenv.Logger(t).With("seq", id))
}

// startLog is start with a logger of the test's own.
func (r *rig) startLog(t testing.TB, id string, log *slog.Logger) (stop func()) {
	t.Helper()
	s, err := sequencer.New(context.Background(), r.nc.NC, r.nc.JS, postgres.NewMemberCache(r.pool, 0), sequencer.Options{
		InstanceID: id, Partitions: r.cfg.Partitions, Batch: r.cfg.SequencerBatch, LeaseTTL: r.cfg.LeaseTTL, Log: log,
		AtomicBatches: r.atomic, Pipelined: r.pipelined, History: postgres.NewHistory(r.pool, r.tl),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range r.takers {
		s.OfferLocally(tk)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func (r *rig) timeline(t *testing.T, conv string) []timeline.Stored {
	t.Helper()
	got, err := r.tl.Read(context.Background(), conv, 0, 1_000_000, 0)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// Invariant 2: 8 senders, 500 messages each, into 20 conversations, pipelined,
// with two sequencers running and one of them stopped halfway: every
// conversation's seqs are exactly 1..n and each sender's order is kept.
func TestGapFreeOrderedUnderTwoSequencers(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct {
		name              string
		atomic, pipelined bool
		storage           string
	}{
		{"rounds on file storage", false, false, "file"},
		{"atomic batches on memory storage", true, false, "memory"},
		// A pipelining sequencer is TIMELINE's only writer: the second
		// one starts once the first has stopped.
		{"pipelined on file storage, one sequencer at a time", false, true, "file"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, func(c *config.Config) { c.StreamStorage = mode.storage })
			r.atomic, r.pipelined = mode.atomic, mode.pipelined
			testGapFreeOrdered(t, r)
		})
	}
}

func testGapFreeOrdered(t *testing.T, r *rig) {
	const senders, perSender, convs = 8, 500, 20
	users := make([]string, senders)
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i)
	}
	for c := 0; c < convs; c++ {
		testenv.Seed(t, r.pool, fmt.Sprintf("c%02d", c), users...)
	}
	stopA := r.start(t, "seq-a")
	if !r.pipelined {
		r.start(t, "seq-b")
	}

	var acked sync.WaitGroup
	var mu sync.Mutex
	results := map[string]events.Result{} // "<sender>.<id>" → result
	half := make(chan struct{})
	var halfOnce sync.Once
	var count int
	for s := 0; s < senders; s++ {
		acked.Add(1)
		go func(s int) {
			defer acked.Done()
			// One NATS connection per sender publishes in order without
			// waiting: the sequencer alone keeps the order.
			nc, err := nats.Connect(r.cfg.NATSURL)
			if err != nil {
				t.Error(err)
				return
			}
			defer nc.Close()
			js, _ := nc.JetStream()
			inbox := nats.NewInbox()
			replies := make(chan *nats.Msg, 4*perSender)
			sub, _ := nc.ChanSubscribe(inbox+".*", replies)
			defer sub.Unsubscribe()
			for i := 0; i < perSender; i++ {
				cmd := events.Command{Op: events.OpSend, ID: fmt.Sprintf("s%dm%d", s, i), Conv: fmt.Sprintf("c%02d", (i+s)%convs), From: users[s], Body: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}
				m := nats.NewMsg(timeline.CmdSubject(r.cfg.Partitions, cmd.Conv))
				m.Data, _ = json.Marshal(cmd)
				m.Header.Set(timeline.HeaderReply, inbox+"."+cmd.ID)
				if _, err := js.PublishMsgAsync(m); err != nil {
					t.Error(err)
					return
				}
			}
			// A command redelivered after the handover is answered again:
			// count distinct commands, and check repeats agree.
			seen := map[string]bool{}
			for len(seen) < perSender {
				select {
				case m := <-replies:
					// Answers come one by one or batched per waiting process.
					var answers []events.Answer
					if token := strings.TrimPrefix(m.Subject, inbox+"."); token == timeline.ReplyBatchToken {
						json.Unmarshal(m.Data, &answers)
					} else {
						var res events.Result
						json.Unmarshal(m.Data, &res)
						answers = []events.Answer{{Token: token, Result: res}}
					}
					for _, a := range answers {
						res := a.Result
						if res.Code != "" {
							t.Errorf("command refused: %+v", res)
						}
						key := users[s] + "." + a.Token
						mu.Lock()
						if prev, ok := results[key]; ok && prev != res {
							t.Errorf("%s answered %+v, then %+v", key, prev, res)
						}
						results[key] = res
						if !seen[key] {
							seen[key] = true
							count++
						}
						if count == senders*perSender/2 {
							halfOnce.Do(func() { close(half) })
						}
						mu.Unlock()
					}
				case <-time.After(30 * time.Second):
					t.Errorf("sender %d: only %d of %d answers", s, len(seen), perSender)
					return
				}
			}
		}(s)
	}
	select {
	case <-half:
	case <-time.After(30 * time.Second):
		t.Fatal("half the commands were not answered in 30s")
	}
	stopA() // the other sequencer takes over its partitions
	if r.pipelined {
		r.start(t, "seq-b")
	}
	acked.Wait()
	if t.Failed() {
		return
	}

	total := 0
	for c := 0; c < convs; c++ {
		conv := fmt.Sprintf("c%02d", c)
		got := r.timeline(t, conv)
		total += len(got)
		lastIndex := map[string]int{}
		for i, e := range got {
			if e.Seq != int64(i+1) {
				t.Fatalf("%s: event %d has seq %d (gap or duplicate)", conv, i, e.Seq)
			}
			var body struct{ I int }
			json.Unmarshal(e.Body, &body)
			if prev, ok := lastIndex[e.From]; ok && body.I <= prev {
				t.Fatalf("%s: %s's message %d sequenced after %d", conv, e.From, body.I, prev)
			}
			lastIndex[e.From] = body.I
			if res := results[e.From+"."+e.ID]; res.Seq != e.Seq || res.Conv != conv {
				t.Fatalf("%s: ack for %s.%s = %+v, timeline has seq %d", conv, e.From, e.ID, res, e.Seq)
			}
		}
	}
	if total != senders*perSender {
		t.Fatalf("timeline holds %d events, want %d", total, senders*perSender)
	}
}

// Invariant 3: the same command id sent five times, before and after a
// sequencer restart and after the duplicate window has passed, gives one
// event and the same seq every time.
func TestIdempotentResend(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *config.Config) { c.DuplicateWindow = time.Second })
	testenv.Seed(t, r.pool, "c1", "alice", "bob")
	ctx := testenv.Context(t, time.Minute)
	stop := r.start(t, "seq-1")
	cmd := events.Command{Op: events.OpSend, ID: "01JRESEND", Conv: "c1", From: "alice", Body: json.RawMessage(`{"text":"once"}`)}
	var first events.Result
	submit := func(n int) {
		t.Helper()
		res, err := r.sub.Submit(ctx, cmd, "")
		if err != nil {
			t.Fatalf("submit %d: %v", n, err)
		}
		if n == 1 {
			first = res
		}
		if res != first {
			t.Fatalf("submit %d answered %+v, first answered %+v", n, res, first)
		}
	}
	submit(1)
	submit(2)
	// Another sender may use the same id: ids are scoped to their sender.
	other := cmd
	other.From = "bob"
	if res, err := r.sub.Submit(ctx, other, ""); err != nil || res.Seq != 2 {
		t.Fatalf("bob's command with alice's id = %+v, %v; want seq 2", res, err)
	}
	submit(3)
	stop()
	r.start(t, "seq-2") // a cold sequencer: nothing in memory
	submit(4)
	time.Sleep(1500 * time.Millisecond) // let JetStream's duplicate window pass
	submit(5)
	got := r.timeline(t, "c1")
	if len(got) != 2 || got[0].ID != cmd.ID || got[0].From != "alice" || got[1].From != "bob" {
		t.Fatalf("timeline = %+v, want alice's event then bob's", got)
	}
}

// Every command of a batch is remembered (DEDUPE takes a batch's results in
// one write): after the partition moves to a cold sequencer and past
// JetStream's duplicate window, a resend of any of them is answered with
// its first seq and appends nothing.
func TestIdempotentResendOfABatch(t *testing.T) {
	t.Run("pipelined", func(t *testing.T) { t.Parallel(); testResendOfABatch(t, false, true) })
	t.Run("rounds", func(t *testing.T) { t.Parallel(); testResendOfABatch(t, false, false) })
	t.Run("atomic", func(t *testing.T) { t.Parallel(); testResendOfABatch(t, true, false) })
}

func testResendOfABatch(t *testing.T, atomic, pipelined bool) {
	r := newRig(t, func(c *config.Config) { c.DuplicateWindow = time.Second })
	r.atomic, r.pipelined = atomic, pipelined
	testenv.Seed(t, r.pool, "c1", "alice", "bob")
	ctx := testenv.Context(t, time.Minute)
	stop := r.start(t, "seq-1")
	cmds := make([]events.Command, 20)
	for i := range cmds {
		cmds[i] = events.Command{Op: events.OpSend, ID: fmt.Sprintf("01JBATCH%02d", i), Conv: "c1", From: "alice", Body: json.RawMessage(`{"text":"once"}`)}
	}
	submit := func(cmds []events.Command) []events.Result {
		t.Helper()
		ps, err := r.sub.PublishBatch(ctx, cmds, "")
		if err != nil {
			t.Fatal(err)
		}
		out := make([]events.Result, len(ps))
		for i, p := range ps {
			if out[i], err = p.Wait(ctx); err != nil {
				t.Fatalf("command %d: %v", i, err)
			}
		}
		return out
	}
	first := submit(cmds)
	// Once every command is acked its result is in DEDUPE, the only thing
	// that can answer the resends below.
	stream, err := r.nc.JS.Stream(ctx, timeline.CmdsStream)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "every command acked", func() bool {
		info, err := stream.Info(ctx)
		return err == nil && info.State.Msgs == 0
	})
	stop()
	r.start(t, "seq-2")                 // takes the partition, nothing in memory
	time.Sleep(1500 * time.Millisecond) // let JetStream's duplicate window pass
	again := submit(append(slices.Clone(cmds), events.Command{Op: events.OpSend, ID: "01JBATCHNEW", Conv: "c1", From: "alice", Body: json.RawMessage(`{"text":"new"}`)}))
	for i := range cmds {
		if again[i] != first[i] || first[i].Seq != int64(i+1) {
			t.Fatalf("resend of command %d answered %+v, first answered %+v", i, again[i], first[i])
		}
	}
	if got := again[len(cmds)]; got.Seq != int64(len(cmds)+1) {
		t.Fatalf("new command answered %+v, want seq %d", got, len(cmds)+1)
	}
	if got := r.timeline(t, "c1"); len(got) != len(cmds)+1 {
		t.Fatalf("timeline has %d events, want %d", len(got), len(cmds)+1)
	}
}

// Refused commands get the protocol's code and append nothing.
func TestRefusals(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	testenv.Seed(t, r.pool, "c1", "alice", "bob")
	testenv.Seed(t, r.pool, "c2", "carol")
	ctx := testenv.Context(t, time.Minute)
	r.start(t, "seq")
	big := json.RawMessage(`"` + strings.Repeat("x", events.MaxBodySize) + `"`)
	for _, tc := range []struct {
		name string
		cmd  events.Command
		want events.Code
	}{
		{"not a member", events.Command{Op: events.OpSend, ID: "a1", Conv: "c2", From: "alice", Body: json.RawMessage(`1`)}, events.CodeForbidden},
		{"no such conversation", events.Command{Op: events.OpSend, ID: "a2", Conv: "nope", From: "alice", Body: json.RawMessage(`1`)}, events.CodeNotFound},
		{"body too large", events.Command{Op: events.OpSend, ID: "a3", Conv: "c1", From: "alice", Body: big}, events.CodeTooLarge},
		{"body not JSON", events.Command{Op: events.OpSend, ID: "a4", Conv: "c1", From: "alice", Body: json.RawMessage(`{`)}, events.CodeBadRequest},
		{"bad id", events.Command{Op: events.OpSend, ID: "a b", Conv: "c1", From: "alice", Body: json.RawMessage(`1`)}, events.CodeBadRequest},
		{"unknown op", events.Command{Op: "explode", ID: "a5", Conv: "c1", From: "alice"}, events.CodeBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.sub.Submit(ctx, tc.cmd, "")
			if events.CodeOf(err) != tc.want {
				t.Fatalf("err = %v, want %s", err, tc.want)
			}
		})
	}
	for _, conv := range []string{"c1", "c2"} {
		if got := r.timeline(t, conv); len(got) != 0 {
			t.Fatalf("%s holds %d events after refusals", conv, len(got))
		}
	}
	// And the conversation still works.
	if res, err := r.sub.Submit(ctx, events.Command{Op: events.OpSend, ID: "ok", Conv: "c1", From: "bob", Body: json.RawMessage(`"hi"`)}, ""); err != nil || res.Seq != 1 {
		t.Fatalf("valid send = %+v, %v", res, err)
	}
}

// Invariant 7: whether a message was recalled already is answered only to
// someone who may recall it. A member who is neither the sender nor the
// owner gets forbidden for a recalled message, whether the first recall was
// sequenced in an earlier batch or sits in the same batch, ahead of theirs.
func TestRecallPermissionBeforeIdempotency(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	testenv.Seed(t, r.pool, "g1", "owner", "alice", "bob")
	ctx := testenv.Context(t, time.Minute)
	stop := r.start(t, "seq-1")
	send := func(id string) int64 {
		t.Helper()
		res, err := r.sub.Submit(ctx, events.Command{Op: events.OpSend, ID: id, Conv: "g1", From: "alice", Body: json.RawMessage(`"hi"`)}, "")
		if err != nil {
			t.Fatalf("send %s: %v", id, err)
		}
		return res.Seq
	}
	recall := func(id, from string, target int64) events.Command {
		return events.Command{Op: events.OpRecall, ID: id, Conv: "g1", From: from, Target: target}
	}

	m1 := send("m1")
	first, err := r.sub.Submit(ctx, recall("r1", "alice", m1), "")
	if err != nil {
		t.Fatalf("alice recalls her message: %v", err)
	}
	if res, err := r.sub.Submit(ctx, recall("r2", "bob", m1), ""); events.CodeOf(err) != events.CodeForbidden {
		t.Fatalf("bob recalls alice's recalled message: %+v, %v; want forbidden", res, err)
	}
	// Idempotency still holds for those who may recall: the sender again,
	// and the group's owner, get the first recall's seq.
	for _, c := range []events.Command{recall("r3", "alice", m1), recall("r4", "owner", m1)} {
		if res, err := r.sub.Submit(ctx, c, ""); err != nil || res.Seq != first.Seq {
			t.Fatalf("%s recalls the recalled message again: %+v, %v; want seq %d", c.From, res, err, first.Seq)
		}
	}

	// Both recalls of m2 wait in CMDS while no sequencer runs, so that the
	// next one takes them in one batch, alice's first.
	m2 := send("m2")
	stop()
	pa, err := r.sub.Publish(ctx, recall("r5", "alice", m2), "")
	if err != nil {
		t.Fatal(err)
	}
	pb, err := r.sub.Publish(ctx, recall("r6", "bob", m2), "")
	if err != nil {
		t.Fatal(err)
	}
	r.start(t, "seq-2")
	if res, err := pa.Wait(ctx); err != nil || res.Seq != m2+1 {
		t.Fatalf("alice's recall in the batch: %+v, %v; want seq %d", res, err, m2+1)
	}
	if res, err := pb.Wait(ctx); events.CodeOf(err) != events.CodeForbidden {
		t.Fatalf("bob's recall in the same batch: %+v, %v; want forbidden", res, err)
	}
	if got := r.timeline(t, "g1"); len(got) != 4 {
		t.Fatalf("timeline holds %d events, want 4 (two messages, two recalls)", len(got))
	}
}

// A batched CMDS message (an edge's queued commands) is sequenced in its
// order, each command answered on its own; the batch sent again gets the
// same seqs and appends nothing.
func TestBatchedCommands(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	testenv.Seed(t, r.pool, "c1", "alice", "bob")
	ctx := testenv.Context(t, time.Minute)
	r.start(t, "seq-1")
	var cmds []events.Command
	for i := range 5 {
		cmds = append(cmds, events.Command{Op: events.OpSend, ID: fmt.Sprintf("b%d", i), Conv: "c1", From: "alice", Body: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))})
	}
	cmds[3].From = "mallory" // refused alone: the others go on
	send := func() []events.Result {
		t.Helper()
		ps, err := r.sub.PublishBatch(ctx, cmds, "edge/1")
		if err != nil {
			t.Fatal(err)
		}
		var out []events.Result
		for i, p := range ps {
			res, err := p.Wait(ctx)
			if i == 3 {
				if events.CodeOf(err) != events.CodeForbidden {
					t.Fatalf("a non-member's command in a batch: %+v, %v; want forbidden", res, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("command %d: %v", i, err)
			}
			out = append(out, res)
		}
		return out
	}
	first := send()
	for i, res := range first {
		if res.Seq != int64(i+1) {
			t.Fatalf("answers %+v: want seqs 1..4 in the batch's order", first)
		}
	}
	if again := send(); fmt.Sprint(again) != fmt.Sprint(first) {
		t.Fatalf("the batch again answered %+v, first %+v", again, first)
	}
	got := r.timeline(t, "c1")
	if len(got) != 4 {
		t.Fatalf("timeline has %d events, want 4", len(got))
	}
	for i, ev := range got {
		if want := cmds[[]int{0, 1, 2, 4}[i]].ID; ev.ID != want || ev.Origin != "edge/1" {
			t.Fatalf("event %d = %s from %q, want %s from edge/1", i, ev.ID, ev.Origin, want)
		}
	}
	// Commands of conversations in different partitions never share a batch.
	for conv := range 100 {
		other := fmt.Sprintf("x%d", conv)
		if !r.sub.SamePartition("c1", other) {
			if _, err := r.sub.PublishBatch(ctx, []events.Command{cmds[0], {Op: events.OpSend, ID: "y", Conv: other, From: "alice"}}, ""); err == nil {
				t.Fatal("a batch across partitions was published")
			}
			break
		}
	}
}

// PublishBatchFunc answers each command once through its callback: with
// its seq or refusal when sequenced, and with unavailable when no sequencer
// answers by the deadline (the edge's way of publishing: no goroutine
// waits per command).
func TestPublishBatchFuncAnswersEachOnce(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	testenv.Seed(t, r.pool, "c1", "alice", "bob")
	ctx := testenv.Context(t, time.Minute)
	cmds := []events.Command{
		{Op: events.OpSend, ID: "f0", Conv: "c1", From: "alice", Body: json.RawMessage(`{"text":"a"}`)},
		{Op: events.OpSend, ID: "f1", Conv: "c1", From: "mallory", Body: json.RawMessage(`{"text":"b"}`)},
		{Op: events.OpSend, ID: "f2", Conv: "c1", From: "bob", Body: json.RawMessage(`{"text":"c"}`)},
	}
	type answer struct {
		r   events.Result
		err error
	}
	publish := func(timeout time.Duration) [][]answer {
		t.Helper()
		got := make([][]answer, len(cmds))
		var mu sync.Mutex
		done := make(chan struct{}, len(cmds))
		pctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		err := r.sub.PublishBatchFunc(pctx, cmds, "edge/1", func(i int, res events.Result, err error) {
			mu.Lock()
			got[i] = append(got[i], answer{res, err})
			mu.Unlock()
			done <- struct{}{}
		})
		// With its deadline already past, the store may fail; the commands
		// are answered all the same.
		if err != nil && timeout > 0 {
			t.Fatal(err)
		}
		for range cmds {
			select {
			case <-done:
			case <-ctx.Done():
				t.Fatal("not every command was answered")
			}
		}
		// Past the deadline (when a timer answers what is left): no second
		// answer may follow.
		dl, _ := pctx.Deadline()
		time.Sleep(time.Until(dl) + 100*time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		for i := range got {
			if len(got[i]) != 1 {
				t.Fatalf("command %d answered %d times: %+v", i, len(got[i]), got[i])
			}
		}
		return got
	}
	// No sequencer yet: each is answered unavailable when the deadline passes.
	for i, a := range publish(300 * time.Millisecond) {
		if events.CodeOf(a[0].err) != events.CodeUnavailable {
			t.Fatalf("command %d without a sequencer: %+v, want unavailable", i, a[0])
		}
	}
	// A deadline already past: the same, whether the timer or the failed
	// store answers (the timer is armed once the tokens are registered).
	for i, a := range publish(0) {
		if events.CodeOf(a[0].err) != events.CodeUnavailable {
			t.Fatalf("command %d with its deadline past: %+v, want unavailable", i, a[0])
		}
	}
	r.start(t, "seq-1")
	got := publish(5 * time.Second)
	if got[0][0].err != nil || got[2][0].err != nil || got[0][0].r.Seq != 1 || got[2][0].r.Seq != 2 {
		t.Fatalf("answers %+v: want seqs 1 and 2 for the members' commands", got)
	}
	if events.CodeOf(got[1][0].err) != events.CodeForbidden {
		t.Fatalf("a non-member's command: %+v, want forbidden", got[1][0])
	}
}

// Commands of many connections published at once share CMDS messages
// (timeline's lanes), yet each connection's commands are sequenced in the
// order it published them and each event names the connection it came
// from (none for the api's).
func TestConcurrentPublishersShareMessages(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	testenv.Seed(t, r.pool, "c1", "alice", "bob")
	ctx := testenv.Context(t, time.Minute)
	r.start(t, "seq-1")
	const senders, each = 16, 25
	origin := func(s int) string {
		if s%4 == 3 {
			return "" // as the api submits
		}
		return fmt.Sprintf("edge/%d", s)
	}
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for s := range senders {
		wg.Go(func() {
			var ps []*timeline.PendingCommand
			for i := range each {
				cmd := events.Command{Op: events.OpSend, ID: fmt.Sprintf("s%d-%03d", s, i), Conv: "c1", From: "alice", Body: json.RawMessage(`{"text":"hi"}`)}
				p, err := r.sub.Publish(ctx, cmd, origin(s))
				if err != nil {
					errs <- err
					return
				}
				ps = append(ps, p)
			}
			for _, p := range ps {
				if _, err := p.Wait(ctx); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := r.timeline(t, "c1")
	if len(got) != senders*each {
		t.Fatalf("timeline holds %d events, want %d", len(got), senders*each)
	}
	next := make([]int, senders)
	for _, ev := range got {
		var s, i int
		if _, err := fmt.Sscanf(ev.ID, "s%d-%03d", &s, &i); err != nil {
			t.Fatalf("event id %q: %v", ev.ID, err)
		}
		if i != next[s] {
			t.Fatalf("sender %d: event %d came where %d was due", s, i, next[s])
		}
		next[s]++
		if ev.Origin != origin(s) {
			t.Fatalf("event %s names origin %q, want %q", ev.ID, ev.Origin, origin(s))
		}
	}
	st, err := r.nc.JS.Stream(ctx, timeline.CmdsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.LastSeq; n >= senders*each {
		t.Fatalf("%d commands took %d CMDS messages: none were shared", senders*each, n)
	}
	t.Logf("%d commands in %d CMDS messages", senders*each, info.State.LastSeq)
}

// offers records what a sequencer offers its local takers.
type offers struct {
	mu  sync.Mutex
	got []timeline.Stored
}

func (o *offers) Offer(evs []timeline.Stored) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, evs...)
}

// The events a sequencer hands the projections of its process carry the
// stream sequences they are stored at (a fed projection applies by them,
// timeline.RunFed), however they were appended; a resend answered as a
// duplicate offers the original where it is. Every appended event is
// offered.
func TestOfferedEventsCarryTheirStreamSequence(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct {
		name              string
		atomic, pipelined bool
		storage           string
	}{
		{"rounds", false, false, "file"},
		{"atomic", true, false, "memory"},
		{"pipelined", false, true, "file"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, func(c *config.Config) { c.StreamStorage = mode.storage })
			r.atomic, r.pipelined = mode.atomic, mode.pipelined
			o := &offers{}
			r.takers = []sequencer.Taker{o}
			convs := []string{"c1", "c2", "c3"}
			for _, c := range convs {
				testenv.Seed(t, r.pool, c, "alice", "bob")
			}
			r.start(t, "seq-1")
			ctx := testenv.Context(t, time.Minute)
			var wg sync.WaitGroup
			for i := range 60 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cmd := events.Command{Op: events.OpSend, ID: fmt.Sprintf("m%d", i%50), Conv: convs[i%3], From: "alice", Body: json.RawMessage(`{"text":"x"}`)}
					if _, err := r.sub.Submit(ctx, cmd, ""); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			var appended int
			for _, c := range convs {
				appended += len(r.timeline(t, c))
			}
			// Offered once answered: the last may follow the answer.
			var got []timeline.Stored
			testenv.Eventually(t, 10*time.Second, "every appended event offered", func() bool {
				o.mu.Lock()
				defer o.mu.Unlock()
				got = slices.Clone(o.got)
				return len(got) >= appended
			})
			seen := map[uint64]bool{}
			for _, e := range got {
				at, err := r.tl.Get(ctx, e.StreamSeq)
				if err != nil {
					t.Fatalf("offered %s/%d at #%d: %v", e.Conv, e.Seq, e.StreamSeq, err)
				}
				if at.Conv != e.Conv || at.Seq != e.Seq || at.ID != e.ID {
					t.Fatalf("offered %s/%d (%s) at #%d, which holds %s/%d (%s)", e.Conv, e.Seq, e.ID, e.StreamSeq, at.Conv, at.Seq, at.ID)
				}
				seen[e.StreamSeq] = true
			}
			if len(seen) != appended {
				t.Fatalf("%d events offered, %d appended", len(seen), appended)
			}
		})
	}
}
