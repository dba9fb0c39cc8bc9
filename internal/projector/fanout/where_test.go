package fanout

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"
)

// fakeWhere is presence: users' edges, and a count of lookups.
type fakeWhere struct {
	mu      sync.Mutex
	edges   map[string][]string
	lookups int
	during  func() // runs inside a lookup, after presence was read
}

func (f *fakeWhere) Edges(_ context.Context, users []string) (map[string][]string, error) {
	f.mu.Lock()
	f.lookups++
	out := map[string][]string{}
	for _, u := range users {
		if e := f.edges[u]; len(e) > 0 {
			out[u] = append([]string(nil), e...)
		}
	}
	during := f.during
	f.mu.Unlock()
	if during != nil {
		during()
	}
	return out, nil
}

func (f *fakeWhere) set(user string, edges ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.edges[user] = edges
}

func TestEdgeCache(t *testing.T) {
	now := time.Unix(1000, 0)
	f := &fakeWhere{edges: map[string][]string{"a": {"e1"}}}
	c := newEdgeCache(f, time.Second)
	c.now = func() time.Time { return now }
	ctx := context.Background()
	get := func(users ...string) map[string][]string {
		t.Helper()
		got, err := c.Edges(ctx, users)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := func(what string, got, want map[string][]string, lookups int) {
		t.Helper()
		if !reflect.DeepEqual(got, want) || f.lookups != lookups {
			t.Fatalf("%s: %v after %d lookups, want %v after %d", what, got, f.lookups, want, lookups)
		}
	}
	c.clear() // as Run starts: nothing is kept for one TTL
	want("warming up", get("a", "b"), map[string][]string{"a": {"e1"}}, 1)
	want("warming up, again", get("a", "b"), map[string][]string{"a": {"e1"}}, 2)
	now = now.Add(time.Second)
	get("a", "b")
	want("cached, b offline", get("a", "b"), map[string][]string{"a": {"e1"}}, 3)

	// b connects on e2 and a on e2 too: announced, known at once.
	f.set("b", "e2")
	f.set("a", "e1", "e2")
	c.connected("b", "e2")
	c.connected("a", "e2")
	want("after announcements", get("a", "b"), map[string][]string{"a": {"e1", "e2"}, "b": {"e2"}}, 3)

	// A user never seen is looked up; past the TTL everyone is again.
	f.set("c", "e1")
	want("unknown user", get("c"), map[string][]string{"c": {"e1"}}, 4)
	f.set("a", "e2") // a closed the e1 connection
	now = now.Add(time.Second)
	want("expired", get("a"), map[string][]string{"a": {"e2"}}, 5)

	// An announcement that lands while presence is being asked (which
	// answered before the connection was recorded) must not leave the
	// stale answer cached.
	now = now.Add(time.Second)
	f.during = func() { c.connected("d", "e3") }
	want("racing lookup", get("d"), map[string][]string{}, 6)
	f.during = nil
	f.set("d", "e3")
	want("after the race", get("d"), map[string][]string{"d": {"e3"}}, 7)
}
