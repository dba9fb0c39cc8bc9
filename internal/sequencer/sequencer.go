// Package sequencer is the only writer of TIMELINE: it turns the commands
// waiting in CMDS into events and gives each event of a conversation the next
// gap-free seq.
//
// Conversations are spread over partitions (cmd.<partition>.<conv>); one
// sequencer at a time owns a partition through a lease in a JetStream KV
// bucket and processes its commands in order, so one sender's commands keep
// their order. Ownership is an optimisation, not the guarantee: every append
// carries Nats-Expected-Last-Subject-Sequence, so two sequencers racing on a
// conversation (a lease handover, a paused process) get a conflict, never a
// gap or a duplicate. A whole batch across many conversations is appended in
// one round trip (a JetStream atomic batch, or pipelined where this process
// is TIMELINE's only writer), falling back to one-at-a-time appends for what
// a batch leaves.
package sequencer

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/timeline"
)

// Members is what the sequencer needs to know of membership.
type Members interface {
	Get(ctx context.Context, conv string) (*events.Conv, error)
	Invalidate(conv string)
}

// History looks up earlier events, for recall.
type History interface {
	Event(ctx context.Context, conv string, seq int64) (events.Event, error)
	RecallOf(ctx context.Context, conv string, target int64) (int64, error)
}

// Options configure a Sequencer.
type Options struct {
	InstanceID   string
	Partitions   int
	Batch        int
	LeaseTTL     time.Duration
	RecallWindow time.Duration
	// AtomicBatches appends every batch as one JetStream atomic batch: one
	// round trip and, on a cluster, one Raft proposal. Worth it where
	// JetStream stages batches cheaply (memory or replicated streams); a
	// single file-backed replica stages them in synced files, so there only
	// large batches or ones with a deep conversation queue go atomic. It
	// also writes a batch's results to DEDUPE as one atomic batch rather
	// than one write each.
	AtomicBatches bool
	// Pipelined appends every batch pipelined (timeline.Log.AppendPipelined,
	// TIMELINE allowing fast batches) rather than atomic or in rounds. Only
	// for a sequencer that is TIMELINE's only writer, as the one of a
	// process with the embedded JetStream is: another writer's copy of a
	// command could take the place of one the pipeline skips as a duplicate
	// and pass the next message's checks.
	Pipelined bool
	// History answers recall's questions; without it recall is refused.
	History History
	Log     *slog.Logger
	Metrics prometheus.Registerer
	// Now gives the time events are stamped with; tests move it.
	Now func() time.Time
}

// Sequencer turns commands into events.
type Sequencer struct {
	opt     Options
	nc      *nats.Conn
	js      jetstream.JetStream
	tl      *timeline.Log
	members Members
	leases  jetstream.KeyValue
	dedupe  *timeline.Dedupe
	recent  *recent
	owning  *ownedLog
	local   Local   // nil: every answer goes through NATS
	takers  []Taker // none: every projector reads TIMELINE itself

	toRemember rememberQueue // rememberLoop's

	appended  prometheus.Counter
	refused   *prometheus.CounterVec
	dups      prometheus.Counter
	conflicts prometheus.Counter
	batchSize prometheus.Histogram
	batchTime prometheus.Histogram
	owned     prometheus.Gauge
}

// New returns a sequencer; the streams must exist (timeline.Ensure).
func New(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, members Members, opt Options) (*Sequencer, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	d := config.Default()
	if opt.Batch <= 0 {
		opt.Batch = d.SequencerBatch
	}
	if opt.RecallWindow <= 0 {
		opt.RecallWindow = d.RecallWindow
	}
	if opt.LeaseTTL <= 0 {
		opt.LeaseTTL = d.LeaseTTL
	}
	if opt.Metrics == nil {
		opt.Metrics = prometheus.NewRegistry()
	}
	leases, err := js.KeyValue(ctx, timeline.LeaseBucket)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", timeline.LeaseBucket, err)
	}
	f := promauto.With(opt.Metrics)
	dedupe := timeline.NewDedupe(nc, js)
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "chat_dedupe_keys",
		Help: "Command results the DEDUPE bucket holds (the whole bucket's, the same from every sequencer); NATS keeps about 210 bytes of memory per key on every replica.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n, err := dedupe.Keys(ctx)
		if err != nil {
			return math.NaN() // NATS did not answer: no figure rather than a wrong one
		}
		return float64(n)
	})
	return &Sequencer{
		toRemember: rememberQueue{wake: make(chan struct{}, 1)},
		opt:        opt, nc: nc, js: js, tl: timeline.New(nc, js), members: members, leases: leases, dedupe: dedupe,
		recent:    newRecent(200_000),
		owning:    &ownedLog{log: opt.Log, total: opt.Partitions, quiet: 300 * time.Millisecond, owned: map[int]bool{}},
		appended:  f.NewCounter(prometheus.CounterOpts{Name: "chat_sequencer_events_appended_total", Help: "Events appended to TIMELINE."}),
		refused:   f.NewCounterVec(prometheus.CounterOpts{Name: "chat_sequencer_commands_refused_total", Help: "Commands refused, by code."}, []string{"code"}),
		dups:      f.NewCounter(prometheus.CounterOpts{Name: "chat_sequencer_duplicates_total", Help: "Resent commands answered with their original seq."}),
		conflicts: f.NewCounter(prometheus.CounterOpts{Name: "chat_sequencer_conflicts_total", Help: "Appends that lost a race on a conversation and were retried."}),
		batchSize: f.NewHistogram(prometheus.HistogramOpts{Name: "chat_sequencer_batch_size", Help: "Commands per batch.", Buckets: prometheus.ExponentialBuckets(1, 2, 11)}),
		batchTime: f.NewHistogram(prometheus.HistogramOpts{Name: "chat_sequencer_batch_seconds", Help: "Time to append a batch.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		owned:     f.NewGauge(prometheus.GaugeOpts{Name: "chat_sequencer_partitions_owned", Help: "Partitions this sequencer owns."}),
	}, nil
}
