package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/timeline"
)

// HistoryWriter writes the history projection of TIMELINE (tables events,
// heads and reactions): what the history projector and its rebuild call.
type HistoryWriter struct{ pool *pgxpool.Pool }

// NewHistoryWriter returns the writer of the history kept in pool's database.
func NewHistoryWriter(pool *pgxpool.Pool) *HistoryWriter { return &HistoryWriter{pool: pool} }

// Apply writes a batch of TIMELINE's events into the history, idempotently:
// a row already there stays as it is, and a recall erases its target's body.
func (w *HistoryWriter) Apply(ctx context.Context, stored []timeline.Stored) error {
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
	if err := w.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("write history: %w", err)
	}
	return nil
}

// Clear empties the history, for a rebuild to replay TIMELINE into.
func (w *HistoryWriter) Clear(ctx context.Context) error {
	if _, err := w.pool.Exec(ctx, "TRUNCATE events, heads, reactions"); err != nil {
		return fmt.Errorf("empty history: %w", err)
	}
	return nil
}

// The richer messages in the projection: each event's own fields (a
// message's reply_to, mentions and indexed text, a reaction's emoji and on)
// are written with the event's row; what edits, reactions and recalls do to
// their target (its current state) is queued by queueRich in the same
// transaction, idempotently and whatever order redelivery brings them in:
// every change is guarded by the seq of the event that made it.

// richColumns are the columns of the rich fields, one entry per event of a
// batch, for Apply's multi-row insert.
type richColumns struct {
	replyTo  []int64
	mentions []string // space-separated user ids ("" for none): unnest cannot take ragged arrays
	emoji    []string
	on       []*bool
	text     []string // body.text of a message: what search indexes
}

const (
	richInsertColumns = ", reply_to, mentions, emoji, react_on, tsv"
	richInsertValues  = ", rt, string_to_array(nullif(mn, ''), ' '), em, ro, CASE WHEN tx = '' THEN NULL ELSE to_tsvector('simple', tx) END"
	richInsertParams  = ", $11::bigint[], $12::text[], $13::text[], $14::boolean[], $15::text[]"
	richInsertNames   = ", rt, mn, em, ro, tx"
)

func newRichColumns(n int) *richColumns {
	return &richColumns{replyTo: make([]int64, n), mentions: make([]string, n), emoji: make([]string, n), on: make([]*bool, n), text: make([]string, n)}
}

func (r *richColumns) set(i int, e *events.Event) {
	r.replyTo[i], r.mentions[i], r.emoji[i], r.on[i] = e.ReplyTo, strings.Join(e.Mentions, " "), e.Emoji, e.On
	if e.Kind == events.KindMessage {
		r.text[i] = events.BodyText(e.Body)
	}
}

func (r *richColumns) args() []any { return []any{r.replyTo, r.mentions, r.emoji, r.on, r.text} }

type target struct {
	conv string
	seq  int64
}

type reactionKey struct {
	target
	user, emoji string
}

// queueRich queues, into the batch's pipeline after its inserts and recalls,
// what the batch's edits, reactions and recalls do to their targets.
func queueRich(b *pgx.Batch, stored []timeline.Stored) {
	edits := map[target]*events.Event{} // the latest edit of each target in the batch
	var editSeqs []target               // every edit event: its body goes if its target is recalled
	reacts := map[reactionKey]*events.Event{}
	counts := map[target]bool{}
	var recalls []target
	for i := range stored {
		e := &stored[i].Event
		t := target{e.Conv, e.Target}
		switch e.Kind {
		case events.KindEdit:
			if prev := edits[t]; prev == nil || prev.Seq < e.Seq {
				edits[t] = e
			}
			editSeqs = append(editSeqs, target{e.Conv, e.Seq})
		case events.KindReaction:
			if e.On == nil || e.Emoji == "" {
				continue
			}
			k := reactionKey{t, e.From, e.Emoji}
			if prev := reacts[k]; prev == nil || prev.Seq < e.Seq {
				reacts[k] = e
			}
			counts[t] = true
		case events.KindRecall:
			recalls = append(recalls, t)
		}
	}
	if len(edits) > 0 {
		var convs, texts []string
		var tgts, seqs []int64
		var bodies [][]byte
		for t, e := range edits {
			convs, tgts, seqs, bodies, texts = append(convs, t.conv), append(tgts, t.seq), append(seqs, e.Seq), append(bodies, e.Body), append(texts, events.BodyText(e.Body))
		}
		// The latest edit wins; a recalled message stays erased.
		b.Queue(`UPDATE events m SET cur_body = x.b, edited_seq = x.s, tsv = CASE WHEN x.tx = '' THEN NULL ELSE to_tsvector('simple', x.tx) END
			FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bytea[], $5::text[]) AS x(c, t, s, b, tx)
			WHERE m.conv_id = x.c AND m.seq = x.t AND m.kind = 'message' AND NOT m.recalled AND m.edited_seq < x.s`,
			convs, tgts, seqs, bodies, texts)
	}
	if len(recalls) > 0 {
		convs, tgts := make([]string, len(recalls)), make([]int64, len(recalls))
		for i, t := range recalls {
			convs[i], tgts[i] = t.conv, t.seq
		}
		// Recall erases every version: the message's current state and the
		// bodies of its edits (the base row's body is erased by Apply).
		b.Queue(`UPDATE events m SET cur_body = NULL, edited_seq = 0, tsv = NULL, reactions = NULL
			FROM unnest($1::text[], $2::bigint[]) AS x(c, t) WHERE m.conv_id = x.c AND m.seq = x.t AND m.kind = 'message'`, convs, tgts)
		b.Queue(`UPDATE events e SET body = NULL
			FROM unnest($1::text[], $2::bigint[]) AS x(c, t) WHERE e.conv_id = x.c AND e.target = x.t AND e.target > 0 AND e.kind = 'edit'`, convs, tgts)
	}
	if len(editSeqs) > 0 {
		convs, seqs := make([]string, len(editSeqs)), make([]int64, len(editSeqs))
		for i, t := range editSeqs {
			convs[i], seqs[i] = t.conv, t.seq
		}
		// An edit projected after its target's recall (redelivery, or two
		// sequencers racing) keeps no body either.
		b.Queue(`UPDATE events e SET body = NULL
			FROM unnest($1::text[], $2::bigint[]) AS x(c, s)
			WHERE e.conv_id = x.c AND e.seq = x.s AND e.body IS NOT NULL
			  AND EXISTS (SELECT 1 FROM events m WHERE m.conv_id = e.conv_id AND m.seq = e.target AND m.recalled)`, convs, seqs)
	}
	if len(reacts) > 0 {
		n := len(reacts)
		convs, users, emojis := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		tgts, seqs, ons := make([]int64, 0, n), make([]int64, 0, n), make([]bool, 0, n)
		for k, e := range reacts {
			convs, tgts, users, emojis, seqs, ons = append(convs, k.conv), append(tgts, k.seq), append(users, k.user), append(emojis, k.emoji), append(seqs, e.Seq), append(ons, *e.On)
		}
		b.Queue(`INSERT INTO reactions (conv_id, target, user_id, emoji, seq, on_)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::boolean[])
			ON CONFLICT (conv_id, target, user_id, emoji) DO UPDATE SET seq = EXCLUDED.seq, on_ = EXCLUDED.on_
			WHERE reactions.seq < EXCLUDED.seq`, convs, tgts, users, emojis, seqs, ons)
		cc, ct := make([]string, 0, len(counts)), make([]int64, 0, len(counts))
		for t := range counts {
			cc, ct = append(cc, t.conv), append(ct, t.seq)
		}
		b.Queue(`UPDATE events m SET reactions = (SELECT jsonb_object_agg(emoji, n) FROM
				(SELECT emoji, count(*) AS n FROM reactions r WHERE r.conv_id = m.conv_id AND r.target = m.seq AND r.on_ GROUP BY emoji) s)
			FROM unnest($1::text[], $2::bigint[]) AS x(c, t)
			WHERE m.conv_id = x.c AND m.seq = x.t AND m.kind = 'message' AND NOT m.recalled`, cc, ct)
	}
}
