// Package membership answers "is this user in this conversation, and as
// what" from an in-memory cache over Postgres. The sequencer and fanout ask it
// for every event, so a hit costs no round trip; they invalidate a
// conversation when they see its membership change in the timeline.
package membership

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seqchat/seqchat/internal/chaterr"
)

// Conv is what the cache knows of one conversation.
type Conv struct {
	Kind    string
	Owner   string
	Members map[string]string // user id to role
	// Joined is the seq each member's history starts at.
	Joined map[string]int64
}

// Cache is a bounded cache of conversations' members.
type Cache struct {
	pool *pgxpool.Pool
	max  int

	mu    sync.Mutex
	convs map[string]*Conv
}

// New returns a cache holding at most max conversations.
func New(pool *pgxpool.Pool, max int) *Cache {
	if max <= 0 {
		max = 100_000
	}
	return &Cache{pool: pool, max: max, convs: make(map[string]*Conv)}
}

// Get returns conv's members, loading them on a miss. A conversation that
// does not exist is a not_found error.
func (c *Cache) Get(ctx context.Context, conv string) (*Conv, error) {
	c.mu.Lock()
	cv, ok := c.convs[conv]
	c.mu.Unlock()
	if ok {
		return cv, nil
	}
	cv, err := Load(ctx, c.pool, conv)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.convs) >= c.max {
		// Crude but bounded: start over rather than grow without limit.
		clear(c.convs)
	}
	c.convs[conv] = cv
	c.mu.Unlock()
	return cv, nil
}

// Role returns user's role in conv, "" when not a member.
func (c *Cache) Role(ctx context.Context, conv, user string) (string, error) {
	cv, err := c.Get(ctx, conv)
	if err != nil {
		return "", err
	}
	return cv.Members[user], nil
}

// Invalidate forgets conv, so the next lookup reads Postgres.
func (c *Cache) Invalidate(conv string) {
	c.mu.Lock()
	delete(c.convs, conv)
	c.mu.Unlock()
}

// Load reads conv's members from Postgres.
func Load(ctx context.Context, pool *pgxpool.Pool, conv string) (*Conv, error) {
	cv := &Conv{Members: map[string]string{}, Joined: map[string]int64{}}
	var owner *string
	err := pool.QueryRow(ctx, "SELECT kind, owner_id FROM conversations WHERE id=$1", conv).Scan(&cv.Kind, &owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, chaterr.New(chaterr.NotFound, "conversation %s does not exist", conv)
	}
	if err != nil {
		return nil, chaterr.Wrap(chaterr.Unavailable, err, "load conversation")
	}
	if owner != nil {
		cv.Owner = *owner
	}
	rows, err := pool.Query(ctx, "SELECT user_id, role, joined_seq FROM members WHERE conv_id=$1 AND pending_op IS DISTINCT FROM 'leave'", conv)
	if err != nil {
		return nil, chaterr.Wrap(chaterr.Unavailable, err, "load members")
	}
	defer rows.Close()
	for rows.Next() {
		var u, r string
		var joined int64
		if err := rows.Scan(&u, &r, &joined); err != nil {
			return nil, fmt.Errorf("scan member: %w", err)
		}
		cv.Members[u] = r
		cv.Joined[u] = joined
	}
	if err := rows.Err(); err != nil {
		return nil, chaterr.Wrap(chaterr.Unavailable, err, "load members")
	}
	return cv, nil
}
