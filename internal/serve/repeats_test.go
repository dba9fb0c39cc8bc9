package serve

import (
	"testing"
	"time"
)

func TestRepeats(t *testing.T) {
	now := time.Unix(0, 0)
	r := NewRepeats(time.Minute)
	r.now = func() time.Time { return now }
	if ok, n := r.Allow("k"); !ok || n != 0 {
		t.Fatalf("first: %v %d", ok, n)
	}
	for i := 0; i < 5; i++ {
		now = now.Add(time.Second)
		if ok, _ := r.Allow("k"); ok {
			t.Fatalf("repeat %d within the minute let through", i)
		}
	}
	if ok, _ := r.Allow("other"); !ok {
		t.Fatal("another key held back")
	}
	now = now.Add(time.Minute)
	if ok, n := r.Allow("k"); !ok || n != 5 {
		t.Fatalf("after the minute: %v, %d held back; want true, 5", ok, n)
	}
	if !r.Clear("k") || r.Clear("k") {
		t.Fatal("Clear: want true once, then false")
	}
	if ok, _ := r.Allow("k"); !ok {
		t.Fatal("after Clear the next failure is logged at once")
	}
}
