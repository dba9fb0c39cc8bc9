package sequencer

import (
	"fmt"
	"testing"
)

// TestAtomicChoice pins when a batch goes atomic: always where staging is
// cheap, and on a single file replica only for a large batch or a deep queue.
func TestAtomicChoice(t *testing.T) {
	for _, c := range []struct {
		cheap      bool
		n, deepest int
		want       bool
	}{
		{true, 1, 1, true},
		{false, 1, 1, false},
		{false, 48, 8, false},   // direct conversations, a few sends outstanding
		{false, 500, 2, false},  // large but spread out: rounds take one round trip
		{false, 500, 4, true},   // large and a few rounds: one append saves the PubAcks
		{false, 20, 17, true},   // one busy conversation: 17 round trips in rounds
		{false, 255, 16, false}, // just under both
	} {
		// One conversation with deepest commands, the rest one each.
		queues := map[string][]*pending{"deep": make([]*pending, c.deepest)}
		for i := c.deepest; i < c.n; i++ {
			queues[fmt.Sprint(i)] = make([]*pending, 1)
		}
		s := &Sequencer{opt: Options{AtomicBatches: c.cheap}}
		if got := s.atomic(queues); got != c.want {
			t.Errorf("AtomicBatches %v, %d commands, deepest %d: atomic = %v, want %v", c.cheap, c.n, c.deepest, got, c.want)
		}
	}
}
