package postgres

import (
	"context"
	"errors"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seqchat/seqchat/events"
)

// currentMember is the membership rule, as SQL over a members row aliased m:
// a user is a member while their row exists and they are not leaving. A
// leave marks the row first and deletes it once the leave is sequenced; from
// the mark on, the leaving user no longer reads, syncs or sends. (A join in
// flight is a member whose history starts at a seq beyond any: joined_seq is
// set once the join is sequenced.) Every query of this package that asks who
// is a member uses this clause, and no other.
const currentMember = "m.pending_op IS DISTINCT FROM 'leave'"

// Members answers the membership rule from Postgres (events.Membership).
type Members struct{ pool *pgxpool.Pool }

var _ events.Membership = (*Members)(nil)

// NewMembers returns the membership kept in pool.
func NewMembers(pool *pgxpool.Pool) *Members { return &Members{pool: pool} }

// Check reads from Postgres, not a cache, that user is a member of each of
// convs (a request's authorisation must not rest on a cache another process
// may not have invalidated yet). It answers not_found when a conversation
// does not exist, forbidden when the user is not a member of one, and
// unavailable when Postgres cannot be asked.
func (s *Members) Check(ctx context.Context, user string, convs ...string) (map[string]events.Member, error) {
	out := make(map[string]events.Member, len(convs))
	if len(convs) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT c.id, coalesce(m.role, ''), coalesce(m.joined_seq, 0)
		FROM conversations c LEFT JOIN members m ON m.conv_id=c.id AND m.user_id=$2 AND `+currentMember+`
		WHERE c.id = ANY($1)`, convs, user)
	if err != nil {
		return nil, unavailable("look up membership", err)
	}
	var conv string
	var m events.Member
	if _, err := pgx.ForEachRow(rows, []any{&conv, &m.Role, &m.Joined}, func() error {
		out[conv] = m
		return nil
	}); err != nil {
		return nil, unavailable("look up membership", err)
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

// Load reads conv's kind, owner and current members. A conversation that
// does not exist is a not_found error.
func (s *Members) Load(ctx context.Context, conv string) (*events.Conv, error) {
	cv := &events.Conv{Members: map[string]string{}, Joined: map[string]int64{}}
	var owner *string
	err := s.pool.QueryRow(ctx, "SELECT kind, owner_id FROM conversations WHERE id=$1", conv).Scan(&cv.Kind, &owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, events.NoConversation(conv)
	}
	if err != nil {
		return nil, unavailable("load conversation", err)
	}
	if owner != nil {
		cv.Owner = *owner
	}
	rows, err := s.pool.Query(ctx, "SELECT m.user_id, m.role, m.joined_seq FROM members m WHERE m.conv_id=$1 AND "+currentMember, conv)
	if err != nil {
		return nil, unavailable("load members", err)
	}
	var u, r string
	var joined int64
	if _, err := pgx.ForEachRow(rows, []any{&u, &r, &joined}, func() error {
		cv.Members[u] = r
		cv.Joined[u] = joined
		return nil
	}); err != nil {
		return nil, unavailable("load members", err)
	}
	return cv, nil
}

// MemberCache is a bounded in-memory cache of conversations' members over
// Members. The sequencer and the projectors ask it for every event, so a hit
// costs no round trip; they invalidate a conversation when they see its
// membership change in the timeline. It lives beside the rule it caches so
// that membership has one home; authorisation asks Members.Check instead.
type MemberCache struct {
	members *Members
	max     int

	mu    sync.Mutex
	convs map[string]*events.Conv
}

// NewMemberCache returns a cache of the members kept in pool holding at most
// max conversations (100 000 when max is not positive).
func NewMemberCache(pool *pgxpool.Pool, max int) *MemberCache {
	if max <= 0 {
		max = 100_000
	}
	return &MemberCache{members: NewMembers(pool), max: max, convs: make(map[string]*events.Conv)}
}

// Get returns conv's members, loading them on a miss. A conversation that
// does not exist is a not_found error.
func (c *MemberCache) Get(ctx context.Context, conv string) (*events.Conv, error) {
	c.mu.Lock()
	cv, ok := c.convs[conv]
	c.mu.Unlock()
	if ok {
		return cv, nil
	}
	cv, err := c.members.Load(ctx, conv)
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

// Invalidate forgets conv, so the next lookup reads Postgres.
func (c *MemberCache) Invalidate(conv string) {
	c.mu.Lock()
	delete(c.convs, conv)
	c.mu.Unlock()
}
