package timeline_test

import (
	"testing"
	"time"

	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/timeline"
)

// A push id is claimed once; forgetting it lets a retry claim it again.
// Opening the bucket a second time finds the one that exists.
func TestPushIDs(t *testing.T) {
	c := testenv.Connect(t)
	ctx := testenv.Context(t, 30*time.Second)
	ids, err := timeline.OpenPushIDs(ctx, c.JS, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := ids.Claim(ctx, "p1"); err != nil || !ok {
		t.Fatalf("first claim: %v, %v; want true", ok, err)
	}
	again, err := timeline.OpenPushIDs(ctx, c.JS, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := again.Claim(ctx, "p1"); err != nil || ok {
		t.Fatalf("second claim: %v, %v; want false", ok, err)
	}
	if err := ids.Forget(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	if ok, err := ids.Claim(ctx, "p1"); err != nil || !ok {
		t.Fatalf("claim after forget: %v, %v; want true", ok, err)
	}
}
