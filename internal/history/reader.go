package history

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/chaterr"
	"github.com/seqchat/seqchat/timeline"
)

// Reader reads a conversation's events by seq: from Postgres, and from
// TIMELINE for whatever the projector has not written yet, so that a seq
// once acked is always readable.
type Reader struct {
	pool *pgxpool.Pool
	tl   *timeline.Log
}

// NewReader returns a reader.
func NewReader(pool *pgxpool.Pool, tl *timeline.Log) *Reader { return &Reader{pool: pool, tl: tl} }

// Head returns conv's last seq, from TIMELINE itself.
func (r *Reader) Head(ctx context.Context, conv string) (int64, error) {
	pos, err := r.tl.Last(ctx, conv)
	if err != nil {
		return 0, chaterr.Wrap(chaterr.Unavailable, err, "timeline unavailable")
	}
	return pos.Seq, nil
}

// Range returns conv's events with from <= seq <= to, ascending, as history
// shows them: a recalled message has no body, even if the projector has not
// written its recall yet.
func (r *Reader) Range(ctx context.Context, conv string, from, to int64) ([]events.Event, error) {
	return r.read(ctx, conv, from, to, true)
}

// Events returns conv's events with from <= seq <= to as they were
// appended: what live delivery replays when it fills a gap, since a recall
// reaches the client as an event of its own, in order.
func (r *Reader) Events(ctx context.Context, conv string, from, to int64) ([]events.Event, error) {
	return r.read(ctx, conv, from, to, false)
}

func (r *Reader) read(ctx context.Context, conv string, from, to int64, recalls bool) ([]events.Event, error) {
	if from < 1 {
		from = 1
	}
	if to < from {
		return nil, nil
	}
	rows, err := r.pool.Query(ctx, `SELECT seq, stream_seq, kind, cmd_id, sender, ts, body, target, member, recalled
		FROM events WHERE conv_id=$1 AND seq BETWEEN $2 AND $3 ORDER BY seq`, conv, from, to)
	if err != nil {
		return nil, chaterr.Wrap(chaterr.Unavailable, err, "history unavailable")
	}
	defer rows.Close()
	out := make([]events.Event, 0, to-from+1)
	var hint uint64 // stream seq of the last event we hold, to find the next fast
	fill := func(upTo int64) error {
		next := from + int64(len(out))
		if next > upTo {
			return nil
		}
		got, err := r.tl.Read(ctx, conv, next-1, int(upTo-next+1), hint)
		if err != nil {
			return chaterr.Wrap(chaterr.Unavailable, err, "timeline unavailable")
		}
		for _, s := range got {
			out = append(out, s.Event)
			hint = s.StreamSeq
		}
		return nil
	}
	for rows.Next() {
		e := events.Event{Conv: conv}
		var streamSeq int64
		var body []byte
		if err := rows.Scan(&e.Seq, &streamSeq, &e.Kind, &e.ID, &e.From, &e.TS, &body, &e.Target, &e.User, &e.Recalled); err != nil {
			return nil, fmt.Errorf("scan history: %w", err)
		}
		e.Body = body
		// A hole below this row: the projector (or a replica) is behind.
		if err := fill(e.Seq - 1); err != nil {
			return nil, err
		}
		out = append(out, e)
		hint = uint64(streamSeq)
	}
	if err := rows.Err(); err != nil {
		return nil, chaterr.Wrap(chaterr.Unavailable, err, "history unavailable")
	}
	if err := fill(to); err != nil {
		return nil, err
	}
	if recalls && len(out) > 0 {
		if err := r.applyRecalls(ctx, conv, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// applyRecalls marks the events of out that a recall the projector has not
// written yet has recalled: only the unprojected tail can hold one, since a
// projected recall is written together with its target.
func (r *Reader) applyRecalls(ctx context.Context, conv string, out []events.Event) error {
	var projected int64
	err := r.pool.QueryRow(ctx, "SELECT coalesce((SELECT last_seq FROM heads WHERE conv_id=$1), 0)", conv).Scan(&projected)
	if err != nil {
		return chaterr.Wrap(chaterr.Unavailable, err, "history unavailable")
	}
	tail, err := r.tl.Read(ctx, conv, max(projected, out[0].Seq), maxTailScan, 0)
	if err != nil {
		return chaterr.Wrap(chaterr.Unavailable, err, "timeline unavailable")
	}
	for _, s := range tail {
		if s.Kind != events.KindRecall {
			continue
		}
		if i := s.Target - out[0].Seq; i >= 0 && i < int64(len(out)) && out[i].Kind == events.KindMessage {
			out[i].Recalled, out[i].Body = true, nil
		}
	}
	return nil
}

// maxTailScan bounds how far past the projection a read looks for recalls.
const maxTailScan = 10_000

// Event returns conv's event seq; not_found when there is none.
func (r *Reader) Event(ctx context.Context, conv string, seq int64) (events.Event, error) {
	got, err := r.Range(ctx, conv, seq, seq)
	if err != nil {
		return events.Event{}, err
	}
	if len(got) == 0 {
		return events.Event{}, chaterr.New(chaterr.NotFound, "no event %d in %s", seq, conv)
	}
	return got[0], nil
}

// RecallOf returns the seq of the recall event that recalled conv's message
// target, or 0 if it has not been recalled.
func (r *Reader) RecallOf(ctx context.Context, conv string, target int64) (int64, error) {
	var seq, projected int64
	err := r.pool.QueryRow(ctx, `SELECT coalesce((SELECT min(seq) FROM events WHERE conv_id=$1 AND kind='recall' AND target=$2), 0),
		coalesce((SELECT last_seq FROM heads WHERE conv_id=$1), 0)`, conv, target).Scan(&seq, &projected)
	if err != nil {
		return 0, chaterr.Wrap(chaterr.Unavailable, err, "history unavailable")
	}
	if seq > 0 {
		return seq, nil
	}
	// Not projected (yet): look in the tail the projector has not written.
	tail, err := r.tl.Read(ctx, conv, max(projected, target), maxTailScan, 0)
	if err != nil {
		return 0, chaterr.Wrap(chaterr.Unavailable, err, "timeline unavailable")
	}
	for _, s := range tail {
		if s.Kind == events.KindRecall && s.Target == target {
			return s.Seq, nil
		}
	}
	return 0, nil
}
