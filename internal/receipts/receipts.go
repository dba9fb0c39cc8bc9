// Package receipts moves read pointers: durably in Postgres (forward only,
// never past the conversation's head), in the unread projection, and out to
// whoever should see the receipt. The api and the edges share it, so a read
// over REST and one over a socket have the same effect.
package receipts

import (
	"context"

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

// Pointers is where read pointers are kept durably (the Postgres store).
type Pointers interface {
	Advance(ctx context.Context, user, conv string, seq int64) (now, was int64, err error)
	Of(ctx context.Context, conv string) (map[string]int64, error)
}

// Notify sends a receipt on its way; origin is the connection that read
// ("<edge>/<conn>", or empty over REST), which needs no receipt of its own.
type Notify func(ctx context.Context, r Receipt, origin string) error

// Service records reads.
type Service struct {
	pointers Pointers
	heads    Heads
	unread   Projection
	notify   Notify
}

// New returns a service; notify may be nil.
func New(pointers Pointers, heads Heads, unread Projection, notify Notify) *Service {
	return &Service{pointers: pointers, heads: heads, unread: unread, notify: notify}
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
	read, was, err := s.pointers.Advance(ctx, user, conv, min(seq, head))
	if err != nil {
		return 0, err
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
	return s.pointers.Of(ctx, conv)
}
