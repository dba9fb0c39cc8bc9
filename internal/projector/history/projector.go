// Package history is the projector of TIMELINE into the history store
// (postgres.HistoryWriter; postgres.History reads it), and the rebuild that
// replays TIMELINE into it from scratch.
package history

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/seqchat/seqchat/timeline"
)

// ConsumerName is the history projector's durable consumer on TIMELINE.
const ConsumerName = "history"

// Store is where the projection is kept (postgres.HistoryWriter).
type Store interface {
	// Apply writes a batch of events idempotently: a redelivered event
	// changes nothing.
	Apply(ctx context.Context, stored []timeline.Stored) error
	// Clear empties the projection.
	Clear(ctx context.Context) error
}

// Projector writes TIMELINE into the store.
type Projector struct {
	store   Store
	js      jetstream.JetStream
	batch   int
	linger  time.Duration
	log     *slog.Logger
	feed    *timeline.Feed // non-nil: events come from the sequencer in this process
	written prometheus.Counter
	lag     prometheus.Gauge
}

// NewProjector returns a history projector that writes up to batch events
// at once, waiting up to linger for a batch to fill (timeline.Projection).
func NewProjector(store Store, js jetstream.JetStream, batch int, linger time.Duration, log *slog.Logger, reg prometheus.Registerer) *Projector {
	f := promauto.With(reg)
	return &Projector{
		store: store, js: js, batch: max(batch, 1), linger: linger, log: log,
		written: f.NewCounter(prometheus.CounterOpts{Name: "chat_history_events_written_total", Help: "Events the history projector wrote to Postgres."}),
		lag:     f.NewGauge(prometheus.GaugeOpts{Name: "chat_history_pending_events", Help: "Events in TIMELINE the history projector has not written yet."}),
	}
}

// TakeOffered makes the projector apply what the sequencer of its process
// offers f (timeline.RunFed) rather than read TIMELINE through its
// consumer. Only where that sequencer appends every event of TIMELINE
// (config.Config.Pipelined). Call it before Run.
func (p *Projector) TakeOffered(f *timeline.Feed) { p.feed = f }

// Run projects until ctx ends.
func (p *Projector) Run(ctx context.Context) error {
	return timeline.RunProjection(ctx, p.js, timeline.Projection{Name: ConsumerName, Start: jetstream.DeliverAllPolicy, Batch: p.batch, Linger: p.linger, Feed: p.feed}, p.log, p.handle)
}

func (p *Projector) handle(ctx context.Context, b *timeline.Events) error {
	if err := p.store.Apply(ctx, b.Stored); err != nil {
		return err
	}
	b.Ack()
	p.written.Add(float64(len(b.Stored)))
	p.lag.Set(float64(b.Pending()))
	return nil
}

// Rebuild empties the history and replays TIMELINE from its first event up
// to the last one stored when it started. It returns how many events it
// replayed.
func Rebuild(ctx context.Context, store Store, js jetstream.JetStream, batch int) (int, error) {
	if err := store.Clear(ctx); err != nil {
		return 0, fmt.Errorf("rebuild: %w", err)
	}
	total := 0
	err := timeline.Replay(ctx, js, batch, func(stored []timeline.Stored) error {
		total += len(stored)
		return store.Apply(ctx, stored)
	})
	return total, err
}
