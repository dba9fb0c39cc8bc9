package activity

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Presence records in Redis which user has which connections on which
// edge, so that fanout knows where to send a conversation's events and the
// api can tell whether a friend is online.
//
// Layout: one hash per user, key "<prefix>presence:{<user>}" (the braces are
// a Redis Cluster hash tag, so a user's presence lives on one slot). Each
// field is one connection, "<edge>/<conn>", and its value is the Unix time in
// milliseconds until which the entry holds. An edge rewrites the fields of
// all its connections every TTL/3 (one pipeline for the whole edge) and
// pushes the key's own expiry forward; it deletes a field when the
// connection closes. When an edge dies without cleaning up, its fields stop
// being refreshed: readers ignore a field past its time at once, and the key
// vanishes by itself once every field of it is stale. So presence is correct
// within one TTL after a crash, across any number of devices and edges.
//
// Readers look many users up in one pipelined round trip (Edges, Online):
// fanout asks once per batch of events, never once per user.

// DefaultPresenceTTL is how long an entry holds without a refresh.
const DefaultPresenceTTL = 15 * time.Second

// PresenceTTL is the TTL of presence entries an edge refreshes every heartbeat:
// a heartbeat and a quarter, so a refresh has a quarter heartbeat to land,
// and with sweeps every tenth of the TTL (SweepEvery) a dead edge's users
// are offline within 1.375 heartbeats of its last refresh: within two of
// its death.
func PresenceTTL(heartbeat time.Duration) time.Duration { return heartbeat * 5 / 4 }

// Conn is one connection an edge holds.
type Conn struct {
	User string
	ID   string // unique on its edge
}

// Presence reads and writes who holds which connections where.
type Presence struct {
	rdb    redis.Cmdable
	prefix string
	ttl    time.Duration
	now    func() time.Time
	// announce, if set, runs after Connect recorded a connection and
	// before it returns (OnConnect).
	announce func(ctx context.Context, user, edge string)
}

// OnConnect makes Connect call f after it recorded a new connection and
// before it returns: whoever keeps presence in memory (the fanout
// projector) learns of the connection before the edge lets it sync. Set it
// before the store is used.
func (s *Presence) OnConnect(f func(ctx context.Context, user, edge string)) { s.announce = f }

// NewPresence returns presence whose keys start with prefix; entries hold
// for ttl without a refresh (DefaultPresenceTTL if ttl <= 0).
func NewPresence(rdb redis.Cmdable, prefix string, ttl time.Duration) *Presence {
	if ttl <= 0 {
		ttl = DefaultPresenceTTL
	}
	return &Presence{rdb: rdb, prefix: prefix, ttl: ttl, now: time.Now}
}

// TTL is how long an entry holds; an edge refreshes well within it.
func (s *Presence) TTL() time.Duration { return s.ttl }

func (s *Presence) key(user string) string { return s.prefix + "presence:{" + user + "}" }

func field(edge, conn string) string { return edge + "/" + conn }

// Add records conns as held by edge, or refreshes them: an edge calls it for
// a new connection, and every TTL/3 for all it holds.
func (s *Presence) Add(ctx context.Context, edge string, conns ...Conn) error {
	if len(conns) == 0 {
		return nil
	}
	untilMS := s.now().Add(s.ttl).UnixMilli()
	until := strconv.FormatInt(untilMS, 10)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, c := range conns {
			k := s.key(c.User)
			p.HSet(ctx, k, field(edge, c.ID), until)
			p.PExpire(ctx, k, s.ttl)
			p.ZAddGT(ctx, s.deadlinesKey(), redis.Z{Score: float64(untilMS), Member: c.User})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record presence of %d connections: %w", len(conns), err)
	}
	return nil
}

// Remove forgets conns of edge (closed connections, or all of them when the
// edge shuts down).
func (s *Presence) Remove(ctx context.Context, edge string, conns ...Conn) error {
	if len(conns) == 0 {
		return nil
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, c := range conns {
			p.HDel(ctx, s.key(c.User), field(edge, c.ID))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove presence of %d connections: %w", len(conns), err)
	}
	return nil
}

// Edges returns, for each of users with a live connection, the edges that
// hold one, in one round trip.
func (s *Presence) Edges(ctx context.Context, users []string) (map[string][]string, error) {
	out := make(map[string][]string, len(users))
	err := s.scan(ctx, users, func(user, edge string) {
		for _, e := range out[user] {
			if e == edge {
				return
			}
		}
		out[user] = append(out[user], edge)
	})
	return out, err
}

// Online reports which of users have a live connection on any edge.
func (s *Presence) Online(ctx context.Context, users []string) (map[string]bool, error) {
	out := make(map[string]bool, len(users))
	err := s.scan(ctx, users, func(user, _ string) { out[user] = true })
	return out, err
}

// scan reads the hashes of users in one pipeline and calls live for each
// entry still within its time. Stale fields of dead edges are deleted on the
// way, in the background of the next round trip's caller.
func (s *Presence) scan(ctx context.Context, users []string, live func(user, edge string)) error {
	if len(users) == 0 {
		return nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(users))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, u := range users {
			cmds[i] = p.HGetAll(ctx, s.key(u))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("look up presence of %d users: %w", len(users), err)
	}
	now := s.now().UnixMilli()
	var stale map[string][]string
	for i, c := range cmds {
		for f, v := range c.Val() {
			until, _ := strconv.ParseInt(v, 10, 64)
			edge, _, ok := strings.Cut(f, "/")
			if !ok {
				continue
			}
			if until < now {
				if stale == nil {
					stale = map[string][]string{}
				}
				stale[users[i]] = append(stale[users[i]], f)
				continue
			}
			live(users[i], edge)
		}
	}
	if stale != nil {
		// Only after an edge died: tidy up so the hash does not collect them.
		go s.prune(context.WithoutCancel(ctx), stale)
	}
	return nil
}

func (s *Presence) prune(ctx context.Context, stale map[string][]string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for u, fields := range stale {
			p.HDel(ctx, s.key(u), fields...)
		}
		return nil
	})
}
