package fanout

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/seqchat/seqchat/timeline"
)

// whereTTL is how long the fanout trusts what presence said about a user.
// A new connection is announced and added at once; what goes stale is only
// a closed connection or a dead edge, which costs a delivery the edge drops.
const whereTTL = time.Second

// AnnounceConnect returns what presence calls after recording a new
// connection: it asks the fanout projector to route user's events to edge
// and waits (briefly) for its answer. Without a running fanout there is
// nobody to tell: the one that starts looks presence up afresh.
func AnnounceConnect(nc *nats.Conn) func(ctx context.Context, user, edge string) {
	return func(ctx context.Context, user, edge string) {
		ctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		defer cancel()
		_, _ = nc.RequestWithContext(ctx, timeline.ConnectedSubject, []byte(user+" "+edge))
	}
}

// edgeCache answers Edges from memory for whereTTL after it asked presence,
// so that a batch of events costs no Redis round trip while its recipients'
// whereabouts are known, and keeps up with new connections from their
// announcements.
type edgeCache struct {
	where Locator
	ttl   time.Duration
	now   func() time.Time

	mu  sync.Mutex
	m   map[string]cached
	gen uint64 // bumped by every announcement
	// Until then nothing is kept: right after listen starts, an edge may
	// not have found this instance to announce to (a subscription takes a
	// moment to reach every server of a cluster).
	keepFrom time.Time
}

type cached struct {
	edges []string
	at    time.Time
}

func newEdgeCache(where Locator, ttl time.Duration) *edgeCache {
	return &edgeCache{where: where, ttl: ttl, now: time.Now, m: map[string]cached{}}
}

// Edges is Locator.Edges, from memory where it can.
func (c *edgeCache) Edges(ctx context.Context, users []string) (map[string][]string, error) {
	out := make(map[string][]string, len(users))
	var missing []string
	c.mu.Lock()
	now := c.now()
	for _, u := range users {
		if e, ok := c.m[u]; ok && now.Sub(e.at) < c.ttl {
			if len(e.edges) > 0 {
				out[u] = e.edges
			}
			continue
		}
		missing = append(missing, u)
	}
	gen := c.gen
	if len(c.m) > 100000 {
		// Forget what has gone stale rather than grow with every user seen.
		for u, e := range c.m {
			if now.Sub(e.at) >= c.ttl {
				delete(c.m, u)
			}
		}
	}
	c.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	got, err := c.where.Edges(ctx, missing)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	// An announcement that came in while presence was asked may not be in
	// what it answered: keep the answer for this batch only (its events
	// were appended before that connection's sync) and ask again next time.
	keep := c.gen == gen && !now.Before(c.keepFrom)
	for _, u := range missing {
		if e := got[u]; len(e) > 0 {
			out[u] = e
		}
		if keep {
			c.m[u] = cached{edges: got[u], at: now}
		}
	}
	c.mu.Unlock()
	return out, nil
}

// connected records an announced connection of user on edge.
func (c *edgeCache) connected(user, edge string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	e, ok := c.m[user]
	if !ok {
		return // not known: the next batch asks presence, which has it
	}
	for _, x := range e.edges {
		if x == edge {
			return
		}
	}
	// A new slice: a batch may be reading the old one.
	e.edges = append(append(make([]string, 0, len(e.edges)+1), e.edges...), edge)
	c.m[user] = e
}

// clear forgets everything and keeps nothing for one TTL (a new lease
// holder starts afresh).
func (c *edgeCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.m)
	c.keepFrom = c.now().Add(c.ttl)
}

// listen answers announcements until the returned stop is called.
func (c *edgeCache) listen(nc *nats.Conn) (stop func(), err error) {
	sub, err := nc.Subscribe(timeline.ConnectedSubject, func(m *nats.Msg) {
		user, edge, ok := strings.Cut(string(m.Data), " ")
		if ok && user != "" && edge != "" {
			c.connected(user, edge)
		}
		_ = m.Respond(nil)
	})
	if err != nil {
		return nil, err
	}
	// The server has the subscription before the first batch is handled.
	if err := nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	return func() { _ = sub.Unsubscribe() }, nil
}
