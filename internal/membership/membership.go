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
	"github.com/seqchat/seqchat/events"
)

// Current is the membership rule, as SQL over a members row aliased m: a
// user is a member while their row exists and they are not leaving. A leave
// marks the row first and deletes it once the leave is sequenced; from the
// mark on, the leaving user no longer reads, syncs or sends. (A join in
// flight is a member whose history starts at a seq beyond any: joined_seq
// is set once the join is sequenced.) Every role asks this rule, through
// Load, Check or this clause, and no other.
const Current = "m.pending_op IS DISTINCT FROM 'leave'"

// Member is one user's standing in one conversation.
type Member struct {
	Role string
	// Joined is the seq the user's history starts at.
	Joined int64
}

// Check reads from Postgres, not the cache, that user is a member of each of
// convs (a request's authorisation must not rest on a cache another process
// may not have invalidated yet). It answers not_found when a conversation
// does not exist, forbidden when the user is not a member of one, and
// unavailable when Postgres cannot be asked.
func Check(ctx context.Context, pool *pgxpool.Pool, user string, convs ...string) (map[string]Member, error) {
	out := make(map[string]Member, len(convs))
	if len(convs) == 0 {
		return out, nil
	}
	rows, err := pool.Query(ctx, `SELECT c.id, coalesce(m.role, ''), coalesce(m.joined_seq, 0)
		FROM conversations c LEFT JOIN members m ON m.conv_id=c.id AND m.user_id=$2 AND `+Current+`
		WHERE c.id = ANY($1)`, convs, user)
	if err != nil {
		return nil, events.WrapError(events.CodeUnavailable, err, "look up membership: store unavailable, try again")
	}
	var conv string
	var m Member
	if _, err := pgx.ForEachRow(rows, []any{&conv, &m.Role, &m.Joined}, func() error {
		out[conv] = m
		return nil
	}); err != nil {
		return nil, events.WrapError(events.CodeUnavailable, err, "look up membership: store unavailable, try again")
	}
	for _, cv := range convs {
		m, ok := out[cv]
		if !ok {
			return nil, events.NoConversation(cv)
		}
		if m.Role == "" {
			return nil, events.NotMember(cv)
		}
	}
	return out, nil
}

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
		return nil, events.NoConversation(conv)
	}
	if err != nil {
		return nil, events.WrapError(events.CodeUnavailable, err, "load conversation")
	}
	if owner != nil {
		cv.Owner = *owner
	}
	rows, err := pool.Query(ctx, "SELECT m.user_id, m.role, m.joined_seq FROM members m WHERE m.conv_id=$1 AND "+Current, conv)
	if err != nil {
		return nil, events.WrapError(events.CodeUnavailable, err, "load members")
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
		return nil, events.WrapError(events.CodeUnavailable, err, "load members")
	}
	return cv, nil
}
