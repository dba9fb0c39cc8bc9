// Package history is the Postgres projection of TIMELINE: the projector that
// writes it, the rebuild that replays it from scratch, and the reader that
// pages it by seq, filling from TIMELINE whatever the projector has not
// written yet (read-your-writes).
package history

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/timeline"
)

// ConsumerName is the history projector's durable consumer on TIMELINE.
const ConsumerName = "history"

// Projector writes TIMELINE into Postgres.
type Projector struct {
	pool    *pgxpool.Pool
	js      jetstream.JetStream
	batch   int
	log     *slog.Logger
	written prometheus.Counter
	lag     prometheus.Gauge
}

// NewProjector returns a history projector.
func NewProjector(pool *pgxpool.Pool, js jetstream.JetStream, batch int, log *slog.Logger, reg prometheus.Registerer) *Projector {
	f := promauto.With(reg)
	return &Projector{
		pool: pool, js: js, batch: max(batch, 1), log: log,
		written: f.NewCounter(prometheus.CounterOpts{Name: "chat_history_events_written_total", Help: "Events the history projector wrote to Postgres."}),
		lag:     f.NewGauge(prometheus.GaugeOpts{Name: "chat_history_pending_events", Help: "Events in TIMELINE the history projector has not written yet."}),
	}
}

// Run projects until ctx ends.
func (p *Projector) Run(ctx context.Context) error {
	return timeline.RunProjection(ctx, p.js, timeline.TimelineStream, ConsumerName, jetstream.DeliverAllPolicy, p.batch, p.log, func(ctx context.Context, msgs []jetstream.Msg) error {
		stored := make([]timeline.Stored, 0, len(msgs))
		for _, m := range msgs {
			s, err := decode(m)
			if err != nil {
				p.log.Error("undecodable event in TIMELINE; skipped", "err", err)
				_ = m.Term()
				continue
			}
			stored = append(stored, s)
		}
		if err := Apply(ctx, p.pool, stored); err != nil {
			return err
		}
		_ = msgs[len(msgs)-1].Ack() // AckAll: acks the whole batch
		p.written.Add(float64(len(stored)))
		if md, err := msgs[len(msgs)-1].Metadata(); err == nil {
			p.lag.Set(float64(md.NumPending))
		}
		return nil
	})
}

func decode(m jetstream.Msg) (timeline.Stored, error) {
	md, err := m.Metadata()
	if err != nil {
		return timeline.Stored{}, err
	}
	ev, err := events.DecodeEvent(m.Data())
	if err != nil {
		return timeline.Stored{}, err
	}
	return timeline.Stored{Event: ev, StreamSeq: md.Sequence.Stream}, nil
}

// Apply writes events into the history, idempotently: a row already there
// stays as it is, and a recall erases its target's body.
func Apply(ctx context.Context, pool *pgxpool.Pool, stored []timeline.Stored) error {
	if len(stored) == 0 {
		return nil
	}
	n := len(stored)
	var (
		convs, kinds, ids, senders, members = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		seqs, streamSeqs, tss, targets      = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		bodies                              = make([][]byte, n)
		rich                                = newRichColumns(n)
	)
	heads := map[string]int64{}
	type recall struct {
		conv   string
		target int64
	}
	var recalls []recall
	for i, s := range stored {
		e := s.Event
		convs[i], seqs[i], streamSeqs[i], kinds[i], ids[i], senders[i], tss[i] = e.Conv, e.Seq, int64(s.StreamSeq), string(e.Kind), e.ID, e.From, e.TS
		bodies[i], targets[i], members[i] = e.Body, e.Target, e.User
		rich.set(i, &e)
		if e.Seq > heads[e.Conv] {
			heads[e.Conv] = e.Seq
		}
		if e.Kind == events.KindRecall {
			recalls = append(recalls, recall{e.Conv, e.Target})
		}
	}
	// One round trip for the whole batch: the statements go out together
	// and run, in order, in the implicit transaction of one pipeline (a
	// recall sees the message inserted before it; a failure applies none).
	// An explicit BEGIN/COMMIT would cost two more round trips per batch,
	// which at a few events a batch was most of the projector's time.
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO events (conv_id, seq, stream_seq, kind, cmd_id, sender, ts, body, target, member`+richInsertColumns+`)
		SELECT c, s, ss, k, i, f, t, b, tg, m`+richInsertValues+` FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bytea[], $9::bigint[], $10::text[]`+richInsertParams+`)
			AS x(c, s, ss, k, i, f, t, b, tg, m`+richInsertNames+`)
		ON CONFLICT (conv_id, seq) DO NOTHING`,
		append([]any{convs, seqs, streamSeqs, kinds, ids, senders, tss, bodies, targets, members}, rich.args()...)...)
	if len(recalls) > 0 {
		rc, rt := make([]string, len(recalls)), make([]int64, len(recalls))
		for i, r := range recalls {
			rc[i], rt[i] = r.conv, r.target
		}
		b.Queue(`UPDATE events SET recalled=true, body=NULL FROM unnest($1::text[], $2::bigint[]) AS r(conv_id, seq)
			WHERE events.conv_id=r.conv_id AND events.seq=r.seq AND events.kind='message'`, rc, rt)
	}
	queueRich(b, stored)
	hc, hs := make([]string, 0, len(heads)), make([]int64, 0, len(heads))
	for c, s := range heads {
		hc, hs = append(hc, c), append(hs, s)
	}
	b.Queue(`INSERT INTO heads (conv_id, last_seq) SELECT * FROM unnest($1::text[], $2::bigint[])
		ON CONFLICT (conv_id) DO UPDATE SET last_seq = GREATEST(heads.last_seq, EXCLUDED.last_seq)`, hc, hs)
	if err := pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("write history: %w", err)
	}
	return nil
}

// Rebuild empties the history and replays TIMELINE from its first event up
// to the last one stored when it started. It returns how many events it
// replayed.
func Rebuild(ctx context.Context, pool *pgxpool.Pool, js jetstream.JetStream, batch int) (int, error) {
	if _, err := pool.Exec(ctx, "TRUNCATE events, heads, reactions"); err != nil {
		return 0, fmt.Errorf("rebuild: empty history: %w", err)
	}
	total := 0
	err := timeline.Replay(ctx, js, batch, func(stored []timeline.Stored) error {
		total += len(stored)
		return Apply(ctx, pool, stored)
	})
	return total, err
}
