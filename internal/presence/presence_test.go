package presence

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
	s := New(rdb, testenv.Name("test:")+":", time.Minute)
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
