package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/timeline"
)

// richSelect are the rich columns a history read scans after the base ones.
const richSelect = ", reply_to, mentions, emoji, react_on, edited_seq, cur_body, reactions"

// richScan receives the rich columns of one row.
type richScan struct {
	replyTo   int64
	mentions  []string
	emoji     string
	on        *bool
	editedSeq int64
	curBody   []byte
	reactions []byte
}

func (r *richScan) dest() []any {
	return []any{&r.replyTo, &r.mentions, &r.emoji, &r.on, &r.editedSeq, &r.curBody, &r.reactions}
}

// fill copies the event's own fields and, for a history page (current), its
// projected current state.
func (r *richScan) fill(e *events.Event, current bool) {
	e.ReplyTo, e.Mentions, e.Emoji, e.On = r.replyTo, r.mentions, r.emoji, r.on
	if !current || e.Kind != events.KindMessage || e.Recalled {
		return
	}
	if r.editedSeq > 0 {
		e.Body, e.Edited, e.EditedSeq = r.curBody, true, r.editedSeq
	}
	if len(r.reactions) > 0 {
		_ = json.Unmarshal(r.reactions, &e.Reactions) // written by the projector as an object of counts
	}
}

// applyTail brings out (a page of history) to the current state with the
// recalls, edits and reactions of conv after seq after, which the projector
// had not written when the page was read (a projected one is written
// together with its effect on its target, in the rows read).
func (h *History) applyTail(ctx context.Context, conv string, out []events.Event, after int64) error {
	var tail []timeline.Stored // only the events that change a message
	if err := h.unprojected(ctx, conv, after, func(s timeline.Stored) bool {
		if s.Kind == events.KindRecall || s.Kind == events.KindEdit || s.Kind == events.KindReaction {
			tail = append(tail, s)
		}
		return true
	}); err != nil {
		return err
	}
	first := out[0].Seq
	at := func(seq int64) *events.Event {
		if i := seq - first; i >= 0 && i < int64(len(out)) && out[i].Kind == events.KindMessage {
			return &out[i]
		}
		return nil
	}
	var reacted []int64
	for i := range tail {
		s := &tail[i].Event
		switch s.Kind {
		case events.KindRecall:
			if m := at(s.Target); m != nil {
				m.Recalled, m.Body, m.Edited, m.EditedSeq, m.Reactions = true, nil, false, 0, nil
			}
		case events.KindEdit:
			if m := at(s.Target); m != nil && !m.Recalled && m.EditedSeq < s.Seq {
				m.Body, m.Edited, m.EditedSeq = s.Body, true, s.Seq
			}
		case events.KindReaction:
			if m := at(s.Target); m != nil && !slices.Contains(reacted, s.Target) {
				reacted = append(reacted, s.Target)
			}
		}
	}
	// Recall erases every version: the edits of a recalled message show no
	// body, wherever the recall is (in the page, projected or not, or after it).
	recalled := map[int64]bool{}
	for i := range tail {
		if tail[i].Kind == events.KindRecall {
			recalled[tail[i].Target] = true
		}
	}
	for i := range out {
		if e := &out[i]; e.Kind == events.KindEdit {
			if m := at(e.Target); recalled[e.Target] || m != nil && m.Recalled {
				e.Body = nil
			}
		}
	}
	if len(reacted) == 0 {
		return nil
	}
	state, err := h.reactionState(ctx, conv, reacted, tail)
	if err != nil {
		return err
	}
	for _, t := range reacted {
		m := at(t)
		if m.Recalled {
			continue
		}
		m.Reactions = nil
		for k, v := range state {
			if k.target == t && v.on {
				if m.Reactions == nil {
					m.Reactions = map[string]int64{}
				}
				m.Reactions[k.emoji]++
			}
		}
	}
	return nil
}

type userEmoji struct {
	target      int64
	user, emoji string
}

type reactionState struct {
	seq int64
	on  bool
}

// reactionState returns who reacts with what on conv's messages targets: the
// projected reactions with the tail's applied over them, the latest by seq
// winning (the projector may have written some of the tail meanwhile).
func (h *History) reactionState(ctx context.Context, conv string, targets []int64, tail []timeline.Stored) (map[userEmoji]reactionState, error) {
	rows, err := h.pool.Query(ctx, "SELECT target, user_id, emoji, seq, on_ FROM reactions WHERE conv_id=$1 AND target = ANY($2)", conv, targets)
	if err != nil {
		return nil, events.WrapError(events.CodeUnavailable, err, "history unavailable")
	}
	state := map[userEmoji]reactionState{}
	var k userEmoji
	var v reactionState
	if _, err := pgx.ForEachRow(rows, []any{&k.target, &k.user, &k.emoji, &v.seq, &v.on}, func() error {
		state[k] = v
		return nil
	}); err != nil {
		return nil, events.WrapError(events.CodeUnavailable, err, "history unavailable")
	}
	for i := range tail {
		s := &tail[i].Event
		if s.Kind != events.KindReaction || s.On == nil || !slices.Contains(targets, s.Target) {
			continue
		}
		k := userEmoji{s.Target, s.From, s.Emoji}
		if cur, ok := state[k]; !ok || cur.seq < s.Seq {
			state[k] = reactionState{s.Seq, *s.On}
		}
	}
	return state, nil
}

// Reactions returns who reacts with what on conv's message seq now, each
// emoji's users in the order they reacted: not_found when there is no such
// event, bad_request when it is not a message; a recalled message has none.
func (h *History) Reactions(ctx context.Context, conv string, seq int64) (map[string][]string, error) {
	m, err := h.Event(ctx, conv, seq)
	if err != nil {
		return nil, err
	}
	if m.Kind != events.KindMessage {
		return nil, events.NotAMessage(seq, m.Kind)
	}
	out := map[string][]string{}
	if m.Recalled {
		return out, nil
	}
	projected, err := h.projected(ctx, conv)
	if err != nil {
		return nil, err
	}
	var tail []timeline.Stored
	if err := h.unprojected(ctx, conv, max(projected, seq), func(s timeline.Stored) bool {
		if s.Kind == events.KindReaction && s.Target == seq {
			tail = append(tail, s)
		}
		return true
	}); err != nil {
		return nil, err
	}
	state, err := h.reactionState(ctx, conv, []int64{seq}, tail)
	if err != nil {
		return nil, err
	}
	type on struct {
		user string
		seq  int64
	}
	by := map[string][]on{}
	for k, v := range state {
		if v.on {
			by[k.emoji] = append(by[k.emoji], on{k.user, v.seq})
		}
	}
	for emoji, l := range by {
		slices.SortFunc(l, func(a, b on) int { return cmp.Compare(a.seq, b.seq) })
		for _, o := range l {
			out[emoji] = append(out[emoji], o.user)
		}
	}
	return out, nil
}
