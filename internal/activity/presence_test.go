package activity

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seqchat/seqchat/internal/testenv"
)

func TestPresence(t *testing.T) {
	opt, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	s := NewPresence(rdb, testenv.Name("test:")+":", time.Minute)
	now := time.Now()
	s.now = func() time.Time { return now }

	if err := s.Add(ctx, "e1", Conn{User: "u1", ID: "1"}, Conn{User: "u1", ID: "2"}, Conn{User: "u2", ID: "3"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(ctx, "e2", Conn{User: "u1", ID: "1"}); err != nil {
		t.Fatal(err)
	}
	edges, err := s.Edges(ctx, []string{"u1", "u2", "u3"})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(edges["u1"])
	if !slices.Equal(edges["u1"], []string{"e1", "e2"}) || !slices.Equal(edges["u2"], []string{"e1"}) || edges["u3"] != nil {
		t.Fatalf("edges = %v", edges)
	}
	// One of two devices closes: still online there.
	if err := s.Remove(ctx, "e1", Conn{User: "u1", ID: "1"}); err != nil {
		t.Fatal(err)
	}
	if edges, _ := s.Edges(ctx, []string{"u1"}); len(edges["u1"]) != 2 {
		t.Fatalf("after closing one device: %v", edges)
	}
	// e1 dies: once its entries are past their time, only e2 counts.
	if err := s.Add(ctx, "e2", Conn{User: "u1", ID: "1"}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	if err := s.Add(ctx, "e2", Conn{User: "u1", ID: "1"}); err != nil { // e2 refreshes, e1 does not
		t.Fatal(err)
	}
	edges, _ = s.Edges(ctx, []string{"u1", "u2"})
	if !slices.Equal(edges["u1"], []string{"e2"}) || edges["u2"] != nil {
		t.Fatalf("after e1 stopped refreshing: %v", edges)
	}
	online, err := s.Online(ctx, []string{"u1", "u2"})
	if err != nil || !online["u1"] || online["u2"] {
		t.Fatalf("online = %v, %v", online, err)
	}
	if err := s.Remove(ctx, "e2", Conn{User: "u1", ID: "1"}); err != nil {
		t.Fatal(err)
	}
	if online, _ := s.Online(ctx, []string{"u1"}); online["u1"] {
		t.Fatal("still online after the last connection closed")
	}
}

// Transitions are reported once each across devices and edges; a dead edge's
// users are swept offline once their entries expire.
func TestTransitions(t *testing.T) {
	opt, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	s := NewPresence(rdb, testenv.Name("test:")+":", time.Minute)
	now := time.Now()
	s.now = func() time.Time { return now }
	want := func(what string, got bool, err error, w bool) {
		t.Helper()
		if err != nil || got != w {
			t.Fatalf("%s: got %v (%v), want %v", what, got, err, w)
		}
	}
	on, err := s.Connect(ctx, "e1", Conn{User: "u1", ID: "1"})
	want("first connection", on, err, true)
	on, err = s.Connect(ctx, "e2", Conn{User: "u1", ID: "1"})
	want("second device, other edge", on, err, false)
	off, err := s.Disconnect(ctx, "e1", Conn{User: "u1", ID: "1"})
	want("one of two closes", off, err, false)
	off, err = s.Disconnect(ctx, "e1", Conn{User: "u1", ID: "1"})
	want("closing twice", off, err, false)
	off, err = s.Disconnect(ctx, "e2", Conn{User: "u1", ID: "1"})
	want("last closes", off, err, true)
	off, err = s.Disconnect(ctx, "e2", Conn{User: "u1", ID: "1"})
	want("last closes again", off, err, false)

	// e1 dies holding u2 (and u3, who also has a live connection on e2).
	for _, c := range []Conn{{"u2", "1"}, {"u3", "2"}} {
		on, err := s.Connect(ctx, "e1", c)
		want("connect "+c.User, on, err, true)
	}
	gone, err := s.Sweep(ctx, 100)
	if err != nil || len(gone) != 0 {
		t.Fatalf("sweep before expiry: %v %v", gone, err)
	}
	now = now.Add(30 * time.Second)
	on, err = s.Connect(ctx, "e2", Conn{User: "u3", ID: "9"})
	want("u3 on e2", on, err, false)
	now = now.Add(31 * time.Second) // e1's entries expired; e2's not
	gone, err = s.Sweep(ctx, 100)
	if err != nil || !slices.Equal(gone, []string{"u2"}) {
		t.Fatalf("sweep after e1 died: %v %v", gone, err)
	}
	if gone, _ := s.Sweep(ctx, 100); len(gone) != 0 {
		t.Fatalf("second sweep: %v", gone)
	}
	now = now.Add(time.Minute) // e2 died too
	if gone, _ := s.Sweep(ctx, 100); !slices.Equal(gone, []string{"u3"}) {
		t.Fatalf("sweep after e2 died: %v", gone)
	}
	if n, _ := rdb.ZCard(ctx, s.deadlinesKey()).Result(); n != 0 {
		t.Fatalf("deadlines keep %d users", n)
	}
	on, err = s.Connect(ctx, "e3", Conn{User: "u2", ID: "1"})
	want("back online", on, err, true)
}

// A refresh that lands after a sweep announced the user offline brings the
// marker back and reports the user online again.
func TestRefreshAfterSweep(t *testing.T) {
	opt, _ := redis.ParseURL(testenv.RedisURL())
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	s := NewPresence(rdb, testenv.Name("test:")+":", time.Minute)
	now := time.Now()
	s.now = func() time.Time { return now }
	c := Conn{User: "u1", ID: "1"}
	if on, err := s.Connect(ctx, "e1", c); err != nil || !on {
		t.Fatalf("connect: %v %v", on, err)
	}
	if back, err := s.Refresh(ctx, "e1", c); err != nil || len(back) != 0 {
		t.Fatalf("timely refresh: %v %v", back, err)
	}
	now = now.Add(2 * time.Minute)
	if gone, _ := s.Sweep(ctx, 10); !slices.Equal(gone, []string{"u1"}) {
		t.Fatalf("sweep: %v", gone)
	}
	if back, err := s.Refresh(ctx, "e1", c); err != nil || !slices.Equal(back, []string{"u1"}) {
		t.Fatalf("late refresh: %v %v", back, err)
	}
	if off, err := s.Disconnect(ctx, "e1", c); err != nil || !off {
		t.Fatalf("disconnect after a late refresh: %v %v", off, err)
	}
}
