package unread_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/unread"
)

func TestBadges(t *testing.T) {
	ctx := context.Background()
	opt, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	s := unread.New(rdb, testenv.Name("test:")+":")
	defer s.Clear(ctx)
	// u has 2 unread in c1 (seqs 1, 2) and 1 in c2 (seq 5), has read c3 up
	// to 9.
	if err := s.Apply(ctx, []unread.Op{
		unread.Add("u", "c1", 1), unread.Add("u", "c1", 2), unread.Add("u", "c2", 5), unread.Read("u", "c3", 9),
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Badges(ctx, []unread.BadgeKey{
		{User: "u", Conv: "c1", Seq: 2},  // counted already: 3 in all
		{User: "u", Conv: "c1", Seq: 3},  // not counted yet: 3 + this one
		{User: "u", Conv: "c3", Seq: 9},  // read already
		{User: "u", Conv: "c3", Seq: 10}, // after the read pointer, and c1's 3 before it
		{User: "v", Conv: "c1", Seq: 1},  // nothing else unread
		{User: "v", Conv: "c2", Seq: 1},  // and the one before, not counted yet either
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []unread.Badge{{Unread: 3}, {Unread: 4}, {Read: true}, {Unread: 5}, {Unread: 1}, {Unread: 2}}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("badge %d: %+v, want %+v (all %+v)", i, got[i], want[i], got)
		}
	}
}
