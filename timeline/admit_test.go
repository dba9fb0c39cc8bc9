package timeline

import (
	"context"
	"testing"
	"time"
)

// A command over the limit waits for a slot given back within the
// admission wait and takes it; without one it is refused once the wait is
// over, or when its context ends.
func TestAdmitWaitsForASlot(t *testing.T) {
	s := &Submitter{}
	s.Limit(1, 5*time.Second, nil)
	ctx := context.Background()
	if !s.Admit(ctx) {
		t.Fatal("the first command was refused")
	}
	got := make(chan bool)
	go func() { got <- s.Admit(ctx) }()
	for deadline := time.Now().Add(5 * time.Second); s.adm.waiting.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second command is not waiting")
		}
	}
	select {
	case ok := <-got:
		t.Fatalf("the second command was answered (%v) while the slot was taken", ok)
	default:
	}
	s.Release()
	if !<-got {
		t.Fatal("the second command was refused though a slot was given back")
	}

	short := &Submitter{}
	short.Limit(1, 20*time.Millisecond, nil)
	short.Admit(ctx)
	start := time.Now()
	if short.Admit(ctx) {
		t.Fatal("admitted over the limit")
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Fatalf("refused after %v, before the admission wait", d)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	start = time.Now()
	if s.Admit(cctx) { // full: the second command holds the slot
		t.Fatal("admitted over the limit with its context ended")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("a command whose context had ended waited %v", d)
	}
}
