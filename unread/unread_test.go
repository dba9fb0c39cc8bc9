package unread_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/unread"
)

// ApplyBuilt reports, from the batch's own round trip, whether the
// projection was there: not before MarkBuilt, yes after, and not again once
// Redis lost it (here: cleared), which is what makes the projector rebuild.
func TestApplyBuiltSeesALostProjection(t *testing.T) {
	t.Parallel()
	ropt, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(ropt)
	defer rdb.Close()
	ctx := testenv.Context(t, time.Minute)
	store := unread.New(rdb, testenv.Name("ub")+":")
	defer store.Clear(context.Background())
	ops := []unread.Op{unread.Add("u1", "c1", 1)}
	check := func(what string, want bool) {
		t.Helper()
		built, err := store.ApplyBuilt(ctx, ops)
		if err != nil || built != want {
			t.Fatalf("%s: ApplyBuilt = %v, %v; want %v", what, built, err, want)
		}
		if b, err := store.ApplyBuilt(ctx, nil); err != nil || b != want {
			t.Fatalf("%s: ApplyBuilt of no ops = %v, %v; want %v", what, b, err, want)
		}
	}
	check("never built", false)
	if err := store.MarkBuilt(ctx); err != nil {
		t.Fatal(err)
	}
	check("built", true)
	if n, err := store.Counts(ctx, "u1"); err != nil || n["c1"] != 1 {
		t.Fatalf("counts = %v, %v; want c1: 1", n, err)
	}
	if err := store.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	check("lost", false)
}
