package postgres

import (
	"context"
	"fmt"

	"github.com/seqchat/seqchat/events"
)

// searchQuery finds the messages whose indexed body.text holds every word of
// $2, in the conversations $1 is a member of, from the seq they joined at
// on, newest first. The 'simple' configuration lowercases and splits on
// anything that is not a letter or digit, without stemming or stop words:
// whole words, case-insensitive, in any language. The projector keeps tsv
// to the latest edit and clears it on recall, so recalled messages never
// match.
const searchQuery = `SELECT e.conv_id, e.seq, e.kind, e.cmd_id, e.sender, e.ts, e.body, e.target, e.member, e.recalled` + richSelect + `
	FROM events e JOIN members m ON m.conv_id = e.conv_id
	WHERE m.user_id = $1 AND m.pending_op IS DISTINCT FROM 'leave' AND e.seq >= m.joined_seq
	  AND e.tsv @@ plainto_tsquery('simple', $2) AND e.kind = 'message' AND NOT e.recalled
	  AND ($3 = '' OR e.conv_id = $3)
	ORDER BY e.ts DESC, e.conv_id, e.seq DESC
	LIMIT $4`

// Search returns up to limit messages matching every word of q that user
// may read (in conv only, unless conv is ""), newest first, as history
// pages show them. It reads the projection: a message the projector has not
// written yet is not found yet.
func (h *History) Search(ctx context.Context, user, q, conv string, limit int) ([]events.Event, error) {
	rows, err := h.pool.Query(ctx, searchQuery, user, q, conv, limit)
	if err != nil {
		return nil, events.WrapError(events.CodeUnavailable, err, "search unavailable")
	}
	defer rows.Close()
	out := []events.Event{}
	for rows.Next() {
		var e events.Event
		var rc richScan
		if err := rows.Scan(append([]any{&e.Conv, &e.Seq, &e.Kind, &e.ID, &e.From, &e.TS, &e.Body, &e.Target, &e.User, &e.Recalled}, rc.dest()...)...); err != nil {
			return nil, fmt.Errorf("scan search: %w", err)
		}
		rc.fill(&e, true)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, events.WrapError(events.CodeUnavailable, err, "search unavailable")
	}
	return out, nil
}
