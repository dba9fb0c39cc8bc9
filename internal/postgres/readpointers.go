package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seqchat/seqchat/events"
)

// ReadPointers keeps each member's read pointer (members.read_seq).
type ReadPointers struct{ pool *pgxpool.Pool }

// NewReadPointers returns the read pointers kept in pool's database.
func NewReadPointers(pool *pgxpool.Pool) *ReadPointers { return &ReadPointers{pool: pool} }

// Advance moves user's pointer in conv forward to seq (never back) and
// returns where it now stands and where it stood, so that a read that
// moves nothing can be told apart. A user who is not a member is
// events.NotMember.
func (r *ReadPointers) Advance(ctx context.Context, user, conv string, seq int64) (now, was int64, err error) {
	err = r.pool.QueryRow(ctx, `UPDATE members m SET read_seq=greatest(m.read_seq, $3)
		FROM (SELECT read_seq FROM members WHERE conv_id=$1 AND user_id=$2 FOR UPDATE) old
		WHERE m.conv_id=$1 AND m.user_id=$2 RETURNING m.read_seq, old.read_seq`,
		conv, user, seq).Scan(&now, &was)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, events.NotMember(conv)
	}
	if err != nil {
		return 0, 0, events.WrapError(events.CodeUnavailable, err, "store read pointer")
	}
	return now, was, nil
}

// Of returns every member's read pointer in conv.
func (r *ReadPointers) Of(ctx context.Context, conv string) (map[string]int64, error) {
	rows, err := r.pool.Query(ctx, "SELECT user_id, read_seq FROM members WHERE conv_id=$1", conv)
	if err != nil {
		return nil, events.WrapError(events.CodeUnavailable, err, "list read pointers")
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var u string
		var seq int64
		if err := rows.Scan(&u, &seq); err != nil {
			return nil, events.WrapError(events.CodeUnavailable, err, "list read pointers")
		}
		out[u] = seq
	}
	return out, rows.Err()
}

// ReadPointer is one member's read pointer.
type ReadPointer struct {
	User, Conv string
	Seq        int64
}

// All returns every read pointer past zero (what a rebuild of the unread
// projection starts from).
func (r *ReadPointers) All(ctx context.Context) ([]ReadPointer, error) {
	rows, err := r.pool.Query(ctx, "SELECT user_id, conv_id, read_seq FROM members WHERE read_seq > 0")
	if err != nil {
		return nil, events.WrapError(events.CodeUnavailable, err, "list read pointers")
	}
	defer rows.Close()
	var out []ReadPointer
	for rows.Next() {
		var p ReadPointer
		if err := rows.Scan(&p.User, &p.Conv, &p.Seq); err != nil {
			return nil, events.WrapError(events.CodeUnavailable, err, "list read pointers")
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
