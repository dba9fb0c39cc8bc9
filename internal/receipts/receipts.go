// Package receipts moves read pointers: durably in Postgres (forward only,
// never past the conversation's head), in the unread projection, and out to
// whoever should see the receipt. The api and the edges share it, so a read
// over REST and one over a socket have the same effect.
package receipts

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/unread"
)

// Receipt says a user has read a conversation up to a seq.
type Receipt struct {
	Conv string `json:"conv"`
	User string `json:"user"`
	Seq  int64  `json:"seq"`
}

// Heads reports a conversation's last seq.
type Heads interface {
	Head(ctx context.Context, conv string) (int64, error)
}

// Projection is the unread projection.
type Projection interface {
	Apply(ctx context.Context, ops []unread.Op) error
}

// Notify sends a receipt on its way; origin is the connection that read
// ("<edge>/<conn>", or empty over REST), which needs no receipt of its own.
type Notify func(ctx context.Context, r Receipt, origin string) error

// Service records reads.
type Service struct {
	pool   *pgxpool.Pool
	heads  Heads
	unread Projection
	notify Notify
}

// New returns a service; notify may be nil.
func New(pool *pgxpool.Pool, heads Heads, unread Projection, notify Notify) *Service {
	return &Service{pool: pool, heads: heads, unread: unread, notify: notify}
}

// SetNotify sets where receipts go (wired after the deliverers exist).
func (s *Service) SetNotify(n Notify) { s.notify = n }

// Read moves user's read pointer in conv to seq and returns where it now
// stands: it only moves forward, and never past the head.
func (s *Service) Read(ctx context.Context, user, conv string, seq int64, origin string) (int64, error) {
	if seq < 0 {
		return 0, events.NotNonNegative("seq")
	}
	head, err := s.heads.Head(ctx, conv)
	if err != nil {
		return 0, err
	}
	// The old pointer too, so that a read that moves nothing sends no receipt.
	var read, was int64
	err = s.pool.QueryRow(ctx, `UPDATE members m SET read_seq=greatest(m.read_seq, $3)
		FROM (SELECT read_seq FROM members WHERE conv_id=$1 AND user_id=$2 FOR UPDATE) old
		WHERE m.conv_id=$1 AND m.user_id=$2 RETURNING m.read_seq, old.read_seq`,
		conv, user, min(seq, head)).Scan(&read, &was)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, events.NotMember(conv)
	}
	if err != nil {
		return 0, events.WrapError(events.CodeUnavailable, err, "store read pointer")
	}
	if err := s.unread.Apply(ctx, []unread.Op{unread.Read(user, conv, read)}); err != nil {
		// Postgres holds the pointer; the client retries (idempotently) and a
		// rebuild would restore it anyway.
		return 0, events.WrapError(events.CodeUnavailable, err, "update unread counts")
	}
	if s.notify != nil && read > was {
		if err := s.notify(ctx, Receipt{Conv: conv, User: user, Seq: read}, origin); err != nil {
			return read, nil // a lost receipt frame is cosmetic: the pointer moved
		}
	}
	return read, nil
}

// Of returns every member's read pointer in conv.
func (s *Service) Of(ctx context.Context, conv string) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, "SELECT user_id, read_seq FROM members WHERE conv_id=$1", conv)
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
