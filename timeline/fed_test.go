package timeline_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/timeline"
)

// applied records what a projection's handler was given, in order.
type applied struct {
	mu   sync.Mutex
	seqs []uint64
}

func (a *applied) handle(_ context.Context, b *timeline.Events) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range b.Stored {
		a.seqs = append(a.seqs, s.StreamSeq)
	}
	b.Ack()
	return nil
}

func (a *applied) got() []uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.seqs)
}

// run runs fn in the background until the returned stop is called, which
// waits for it and fails the test on an error.
func run(t *testing.T, ctx context.Context, fn func(ctx context.Context) error) (stop func()) {
	t.Helper()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- fn(rctx) }()
	return func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// A projection fed in process applies every event of TIMELINE once, in
// stream order, whatever the feed brings: it starts after what its
// consumer had acked (and removes the consumer), reads what it was never
// offered or offered out of order from TIMELINE, drops what it has
// applied, and keeps its position across runs, where a run from a
// consumer takes it up again.
func TestRunFedAppliesEveryEventOnceInOrder(t *testing.T) {
	t.Parallel()
	c := testenv.Streams(t)
	ctx := testenv.Context(t, time.Minute)
	tl, js := timeline.New(c.NC, c.JS), c.JS
	log := testenv.Logger(t)
	var stored []timeline.Stored // stored[i] is at stream sequence i+1
	appendN := func(n int) {
		t.Helper()
		for range n {
			e := ev("c1", int64(len(stored)+1))
			seq, _, err := tl.Append(ctx, timeline.Entry{Event: e, MsgID: e.ID})
			if err != nil {
				t.Fatal(err)
			}
			stored = append(stored, timeline.Stored{Event: *e, StreamSeq: seq})
		}
	}
	upTo := func(from, to uint64) []uint64 {
		var want []uint64
		for s := from; s <= to; s++ {
			want = append(want, s)
		}
		return want
	}
	proj := timeline.Projection{Name: "fedtest", Start: jetstream.DeliverAllPolicy, Batch: 4, Linger: 5 * time.Millisecond}

	// Run from a consumer first: events 1 and 2 acked.
	appendN(2)
	var first applied
	stop := run(t, ctx, func(ctx context.Context) error { return timeline.RunProjection(ctx, js, proj, log, first.handle) })
	testenv.Eventually(t, 10*time.Second, "the consumer's two events acked", func() bool {
		cons, err := js.Consumer(ctx, timeline.TimelineStream, "fedtest")
		return err == nil && len(first.got()) == 2 && cons.CachedInfo() != nil && func() bool {
			info, err := cons.Info(ctx)
			return err == nil && info.AckFloor.Stream == 2
		}()
	})
	stop()

	// Fed: it starts after the consumer's ack floor, reading what TIMELINE
	// holds (3 and 4), then takes the feed.
	appendN(2)
	feed := timeline.NewFeed("fedtest", prometheus.NewRegistry())
	var fed applied
	fedProj := proj
	fedProj.Feed = feed
	stop = run(t, ctx, func(ctx context.Context) error { return timeline.RunFed(ctx, js, fedProj, log, fed.handle) })
	testenv.Eventually(t, 10*time.Second, "events 3 and 4 read on start", func() bool { return len(fed.got()) == 2 })
	if _, err := js.Consumer(ctx, timeline.TimelineStream, "fedtest"); err == nil {
		t.Fatal("the fed projection's consumer is still there")
	}
	appendN(10) // 5..14
	at := func(seqs ...int) []timeline.Stored {
		var out []timeline.Stored
		for _, s := range seqs {
			out = append(out, stored[s-1])
		}
		return out
	}
	feed.Offer(at(9, 10))      // ahead of a gap
	feed.Offer(at(6, 5))       // out of order
	feed.Offer(at(8))          // 7 never offered: read from TIMELINE
	feed.Offer(at(12, 11, 13)) // 14 never offered, and nothing follows it
	feed.Offer(at(5, 3))       // applied already
	testenv.Eventually(t, 10*time.Second, "events 3 to 14", func() bool { return len(fed.got()) >= 12 })
	stop()
	if got, want := fed.got(), upTo(3, 14); !slices.Equal(got, want) {
		t.Fatalf("fed projection applied %v, want %v", got, want)
	}

	// A second fed run goes on after its position.
	appendN(1) // 15
	var again applied
	stop = run(t, ctx, func(ctx context.Context) error { return timeline.RunFed(ctx, js, fedProj, log, again.handle) })
	feed.Offer(at(14, 15))
	testenv.Eventually(t, 10*time.Second, "event 15", func() bool { return len(again.got()) >= 1 })
	stop()
	if got := again.got(); !slices.Equal(got, []uint64{15}) {
		t.Fatalf("second fed run applied %v, want [15]", got)
	}

	// And so does a run from a consumer, which has to be made anew.
	appendN(1) // 16
	var last applied
	stop = run(t, ctx, func(ctx context.Context) error { return timeline.RunProjection(ctx, js, proj, log, last.handle) })
	testenv.Eventually(t, 10*time.Second, "event 16", func() bool { return len(last.got()) >= 1 })
	stop()
	if got := last.got(); !slices.Equal(got, []uint64{16}) {
		t.Fatalf("consumer run after the fed ones applied %v, want [16]", got)
	}
}

// Offered in chunks out of order, some never, while the projection applies
// in small batches: every event once, in stream order.
func TestRunFedShuffledOffers(t *testing.T) {
	t.Parallel()
	c := testenv.Streams(t)
	ctx := testenv.Context(t, time.Minute)
	tl, js := timeline.New(c.NC, c.JS), c.JS
	feed := timeline.NewFeed("shuffled", prometheus.NewRegistry())
	var a applied
	proj := timeline.Projection{Name: "shuffled", Start: jetstream.DeliverAllPolicy, Batch: 7, Linger: time.Millisecond, Feed: feed}
	stop := run(t, ctx, func(ctx context.Context) error {
		return timeline.RunFed(ctx, js, proj, testenv.Logger(t), a.handle)
	})
	rnd := rand.New(rand.NewPCG(1, 2))
	const n = 600
	var pending []timeline.Stored
	for i := range n {
		e := ev("c"+strconv.Itoa(i%5), int64(i/5+1))
		seq, _, err := tl.Append(ctx, timeline.Entry{Event: e, MsgID: e.Conv + e.ID})
		if err != nil {
			t.Fatal(err)
		}
		if rnd.IntN(10) > 0 { // one in ten never offered
			pending = append(pending, timeline.Stored{Event: *e, StreamSeq: seq})
		}
		if len(pending) >= 12 || i == n-1 {
			rnd.Shuffle(len(pending), func(i, j int) { pending[i], pending[j] = pending[j], pending[i] })
			for len(pending) > 0 {
				k := 1 + rnd.IntN(len(pending))
				feed.Offer(slices.Clone(pending[:k]))
				pending = pending[k:]
			}
		}
	}
	testenv.Eventually(t, 20*time.Second, "every event applied", func() bool { return len(a.got()) >= n })
	stop()
	var want []uint64
	for s := uint64(1); s <= n; s++ {
		want = append(want, s)
	}
	if got := a.got(); !slices.Equal(got, want) {
		t.Fatalf("applied %d events, not 1..%d in order: %v", len(got), n, got)
	}
}
