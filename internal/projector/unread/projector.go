// Package unread is the projector that keeps the Redis unread projection
// (package unread at the repository's root: counts, mentions, recall state)
// up to date from TIMELINE, and rebuilds it from TIMELINE and the read
// pointers when Redis lost it.
package unread

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/postgres"
	"github.com/seqchat/seqchat/timeline"
	counts "github.com/seqchat/seqchat/unread"
)

// ConsumerName is the unread projector's durable consumer on TIMELINE.
const ConsumerName = "unread"

// Members answers who is in a conversation.
type Members interface {
	Get(ctx context.Context, conv string) (*events.Conv, error)
	Invalidate(conv string)
}

// Ops turns events into projection ops, in order. Member events invalidate
// members so that later events of the batch see the change. An event of a
// conversation Postgres does not know (a database restored from before it)
// has nobody to count for and makes no op: retrying would stop the
// projection for good.
func Ops(ctx context.Context, members Members, stored []timeline.Stored) ([]counts.Op, error) {
	var ops []counts.Op
	for i := range stored {
		e := stored[i].Event
		switch e.Kind {
		case events.KindMessage:
			cv, err := members.Get(ctx, e.Conv)
			if events.CodeOf(err) == events.CodeNotFound {
				continue
			}
			if err != nil {
				return nil, err
			}
			for _, u := range counts.Recipients(cv, e) {
				ops = append(ops, counts.Add(u, e.Conv, e.Seq))
			}
			ops = appendMentions(ops, cv, e)
		case events.KindRecall:
			cv, err := members.Get(ctx, e.Conv)
			if events.CodeOf(err) == events.CodeNotFound {
				continue
			}
			if err != nil {
				return nil, err
			}
			ops = append(ops, counts.Recalled(e.Conv, e.Target))
			for u := range cv.Members {
				ops = append(ops, counts.Remove(u, e.Conv, e.Target))
			}
		case events.KindMemberJoined:
			members.Invalidate(e.Conv)
		case events.KindMemberLeft:
			members.Invalidate(e.Conv)
			ops = append(ops, counts.Forget(e.User, e.Conv))
		}
	}
	return ops, nil
}

// Projector keeps the projection up to date from TIMELINE.
type Projector struct {
	store   *counts.Store
	pool    *postgres.Pool
	members Members
	js      jetstream.JetStream
	batch   int
	linger  time.Duration
	log     *slog.Logger
	feed    *timeline.Feed // non-nil: events come from the sequencer in this process
	applied prometheus.Counter
	ops     prometheus.Counter
}

// NewProjector returns an unread projector that applies up to batch events
// at once, waiting up to linger for a batch to fill (timeline.Projection).
func NewProjector(store *counts.Store, pool *postgres.Pool, members Members, js jetstream.JetStream, batch int, linger time.Duration, log *slog.Logger, reg prometheus.Registerer) *Projector {
	f := promauto.With(reg)
	return &Projector{
		store: store, pool: pool, members: members, js: js, batch: max(batch, 1), linger: linger, log: log,
		applied: f.NewCounter(prometheus.CounterOpts{Name: "chat_unread_events_total", Help: "Events the unread projector applied."}),
		ops:     f.NewCounter(prometheus.CounterOpts{Name: "chat_unread_redis_ops_total", Help: "Redis operations the unread projector issued."}),
	}
}

// TakeOffered makes the projector apply what the sequencer of its process
// offers f (timeline.RunFed) rather than read TIMELINE through its
// consumer. Only where that sequencer appends every event of TIMELINE
// (config.Config.Pipelined). Call it before Run.
func (p *Projector) TakeOffered(f *timeline.Feed) { p.feed = f }

// Run projects until ctx ends. Events are applied in stream order, one batch
// per Redis round trip.
func (p *Projector) Run(ctx context.Context) error {
	return timeline.RunProjection(ctx, p.js, timeline.Projection{Name: ConsumerName, Start: jetstream.DeliverAllPolicy, Batch: p.batch, Linger: p.linger, Feed: p.feed}, p.log, p.handle)
}

func (p *Projector) handle(ctx context.Context, b *timeline.Events) error {
	// A batch that starts at TIMELINE's first event has nothing before
	// it a projection could hold: a missing marker then means a fresh
	// install, not a Redis that lost its data.
	if err := p.apply(ctx, b.Stored, b.FirstStreamSeq() == 1); err != nil {
		return err
	}
	b.Ack()
	return nil
}

func (p *Projector) apply(ctx context.Context, stored []timeline.Stored, fromStart bool) error {
	ops, err := Ops(ctx, p.members, stored)
	if err != nil {
		return err
	}
	// Redis keeps nothing across a restart here: when the projection is
	// gone, build it again from TIMELINE and the read pointers, then apply
	// the batch again (its ops are idempotent, and the rebuild cleared
	// whatever they did to the empty Redis). The check rides in the batch's
	// own pipeline rather than costing a round trip per batch.
	built, err := p.store.ApplyBuilt(ctx, ops)
	if err != nil {
		return err
	}
	if !built {
		if fromStart {
			p.log.Info("unread projection not built yet; building it from TIMELINE")
		} else {
			p.log.Warn("unread projection missing (Redis lost it?); rebuilding from TIMELINE")
		}
		n, err := Rebuild(ctx, p.store, p.pool, p.js, p.batch)
		if err != nil {
			return err
		}
		p.log.Info("unread projection rebuilt", "events", n)
		if err := p.store.Apply(ctx, ops); err != nil {
			return err
		}
	}
	p.applied.Add(float64(len(stored)))
	p.ops.Add(float64(len(ops)))
	return nil
}

// Rebuild clears the projection and replays TIMELINE into it, then applies
// the read pointers stored in Postgres. It returns how many events it replayed.
func Rebuild(ctx context.Context, store *counts.Store, pool *postgres.Pool, js jetstream.JetStream, batch int) (int, error) {
	if err := store.Clear(ctx); err != nil {
		return 0, err
	}
	members := postgres.NewMemberCache(pool, 0)
	// Read pointers first: a replayed message at or below one is not unread.
	pointers, err := postgres.NewReadPointers(pool).All(ctx)
	if err != nil {
		return 0, err
	}
	ops := make([]counts.Op, 0, len(pointers))
	for _, rp := range pointers {
		ops = append(ops, counts.Read(rp.User, rp.Conv, rp.Seq))
	}
	if err := store.Apply(ctx, ops); err != nil {
		return 0, err
	}
	n := 0
	err = timeline.Replay(ctx, js, batch, func(stored []timeline.Stored) error {
		ops, err := Ops(ctx, members, stored)
		if err != nil {
			return err
		}
		n += len(stored)
		return store.Apply(ctx, ops)
	})
	if err != nil {
		return n, err
	}
	return n, store.MarkBuilt(ctx)
}

// appendMentions adds a mention op for each recipient of message e that it
// mentions (each once, however often it names them).
func appendMentions(ops []counts.Op, cv *events.Conv, e events.Event) []counts.Op {
	if len(e.Mentions) == 0 {
		return ops
	}
	for _, u := range counts.Recipients(cv, e) {
		if slices.Contains(e.Mentions, u) {
			ops = append(ops, counts.Mention(u, e.Conv, e.Seq))
		}
	}
	return ops
}
