package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/timeline"
)

// History reads the history projection (what HistoryWriter writes): a
// conversation's events by seq, its reactions, search. A page comes from
// Postgres, and from TIMELINE for whatever the projector has not written
// yet, so that a seq once acked is always readable (read-your-writes).
type History struct {
	pool *pgxpool.Pool
	tl   *timeline.Log
}

// NewHistory returns the history kept in pool's database, filled from tl
// where the projection is behind.
func NewHistory(pool *pgxpool.Pool, tl *timeline.Log) *History { return &History{pool: pool, tl: tl} }

// Head returns conv's last seq, from TIMELINE itself.
func (h *History) Head(ctx context.Context, conv string) (int64, error) {
	pos, err := h.tl.Last(ctx, conv)
	if err != nil {
		return 0, events.WrapError(events.CodeUnavailable, err, "timeline unavailable")
	}
	return pos.Seq, nil
}

// Range returns conv's events with from <= seq <= to, ascending, as history
// shows them: a recalled message has no body, an edited one its latest body,
// a message with reactions their counts, even if the projector has not
// written the recall, edit or reaction yet.
func (h *History) Range(ctx context.Context, conv string, from, to int64) ([]events.Event, error) {
	return h.read(ctx, conv, from, to, true)
}

// Events returns conv's events with from <= seq <= to as they were
// appended: what live delivery replays when it fills a gap, since a recall
// reaches the client as an event of its own, in order.
func (h *History) Events(ctx context.Context, conv string, from, to int64) ([]events.Event, error) {
	return h.read(ctx, conv, from, to, false)
}

func (h *History) read(ctx context.Context, conv string, from, to int64, recalls bool) ([]events.Event, error) {
	if from < 1 {
		from = 1
	}
	if to < from {
		return nil, nil
	}
	// How far the projector had written before the page is read, and not
	// after: every recall at or below that seq is applied in the rows read
	// next (the projector writes a recall and its target's erasure in one
	// transaction), every later one is still in TIMELINE past it. Read
	// after the rows, a recall the projector commits in between would be
	// in neither, and an acked recall would not show.
	// One round trip for both, in that order.
	batch := &pgx.Batch{}
	if recalls {
		batch.Queue(projectedSQL, conv)
	}
	batch.Queue(`SELECT seq, stream_seq, kind, cmd_id, sender, ts, body, target, member, recalled`+richSelect+`
		FROM events WHERE conv_id=$1 AND seq BETWEEN $2 AND $3 ORDER BY seq`, conv, from, to)
	br := h.pool.SendBatch(ctx, batch)
	defer br.Close()
	var projected int64
	if recalls {
		if err := br.QueryRow().Scan(&projected); err != nil {
			return nil, events.WrapError(events.CodeUnavailable, err, "history unavailable")
		}
	}
	rows, err := br.Query()
	if err != nil {
		return nil, events.WrapError(events.CodeUnavailable, err, "history unavailable")
	}
	defer rows.Close()
	out := make([]events.Event, 0, to-from+1)
	var hint uint64 // stream seq of the last event we hold, to find the next fast
	var firstFilled int64
	fill := func(upTo int64) error {
		next := from + int64(len(out))
		if next > upTo {
			return nil
		}
		if firstFilled == 0 {
			firstFilled = next
		}
		got, err := h.tl.Read(ctx, conv, next-1, int(upTo-next+1), hint)
		if err != nil {
			return events.WrapError(events.CodeUnavailable, err, "timeline unavailable")
		}
		for _, s := range got {
			out = append(out, s.Event)
			hint = s.StreamSeq
		}
		return nil
	}
	// One set of destinations for every row (a page is up to 1,000 of
	// them), cleared before each: Scan sets each anew.
	var (
		e         events.Event
		streamSeq int64
		body      []byte
		rc        richScan
	)
	dest := append([]any{&e.Seq, &streamSeq, &e.Kind, &e.ID, &e.From, &e.TS, &body, &e.Target, &e.User, &e.Recalled}, rc.dest()...)
	for rows.Next() {
		e, body, rc = events.Event{Conv: conv}, nil, richScan{}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("scan history: %w", err)
		}
		e.Body = body
		rc.fill(&e, recalls)
		// A hole below this row: the projector (or a replica) is behind.
		if err := fill(e.Seq - 1); err != nil {
			return nil, err
		}
		out = append(out, e)
		hint = uint64(streamSeq)
	}
	if err := rows.Err(); err != nil {
		return nil, events.WrapError(events.CodeUnavailable, err, "history unavailable")
	}
	if err := fill(to); err != nil {
		return nil, err
	}
	if recalls && len(out) > 0 {
		// A hole in the page's rows means the projection is not whole up to
		// projected: look for recalls from the hole on.
		after := max(projected, out[0].Seq)
		if firstFilled > 0 {
			after = min(after, firstFilled-1)
		}
		// The same holds for edits and reactions (history_rich.go).
		if err := h.applyTail(ctx, conv, out, after); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// projectedSQL reads the last seq of a conversation the history projector
// has written.
const projectedSQL = "SELECT coalesce((SELECT last_seq FROM heads WHERE conv_id=$1), 0)"

// projected returns the last seq of conv the history projector has written.
func (h *History) projected(ctx context.Context, conv string) (int64, error) {
	var projected int64
	err := h.pool.QueryRow(ctx, projectedSQL, conv).Scan(&projected)
	if err != nil {
		return 0, events.WrapError(events.CodeUnavailable, err, "history unavailable")
	}
	return projected, nil
}

// unprojectedRecalls hands fn every recall event of conv with seq > after,
// in order, until fn returns false. It reads the whole tail, however long
// (a projector far behind makes it long): an acked recall must show
// however far the projector lags.
func (h *History) unprojectedRecalls(ctx context.Context, conv string, after int64, fn func(timeline.Stored) bool) error {
	return h.unprojected(ctx, conv, after, func(s timeline.Stored) bool { return s.Kind != events.KindRecall || fn(s) })
}

// unprojected hands fn every event of conv with seq > after, in order,
// until fn returns false, reading a chunk at a time.
func (h *History) unprojected(ctx context.Context, conv string, after int64, fn func(timeline.Stored) bool) error {
	var hint uint64
	for {
		tail, err := h.tl.Read(ctx, conv, after, tailChunk, hint)
		if err != nil {
			return events.WrapError(events.CodeUnavailable, err, "timeline unavailable")
		}
		for _, s := range tail {
			if !fn(s) {
				return nil
			}
		}
		if len(tail) < tailChunk {
			return nil
		}
		last := tail[len(tail)-1]
		after, hint = last.Seq, last.StreamSeq+1
	}
}

// tailChunk is how many events of the unprojected tail one read holds.
const tailChunk = 5_000

// Event returns conv's event seq; not_found when there is none.
func (h *History) Event(ctx context.Context, conv string, seq int64) (events.Event, error) {
	got, err := h.Range(ctx, conv, seq, seq)
	if err != nil {
		return events.Event{}, err
	}
	if len(got) == 0 {
		return events.Event{}, events.Errorf(events.CodeNotFound, "no event %d in %s", seq, conv)
	}
	return got[0], nil
}

// RecallOf returns the seq of the recall event that recalled conv's message
// target, or 0 if it has not been recalled.
func (h *History) RecallOf(ctx context.Context, conv string, target int64) (int64, error) {
	var seq, projected int64
	err := h.pool.QueryRow(ctx, `SELECT coalesce((SELECT min(seq) FROM events WHERE conv_id=$1 AND kind='recall' AND target=$2), 0),
		coalesce((SELECT last_seq FROM heads WHERE conv_id=$1), 0)`, conv, target).Scan(&seq, &projected)
	if err != nil {
		return 0, events.WrapError(events.CodeUnavailable, err, "history unavailable")
	}
	if seq > 0 {
		return seq, nil
	}
	// Not projected (yet): look in the tail the projector has not written.
	var found int64
	err = h.unprojectedRecalls(ctx, conv, max(projected, target), func(s timeline.Stored) bool {
		if s.Target == target {
			found = s.Seq
			return false
		}
		return true
	})
	return found, err
}
