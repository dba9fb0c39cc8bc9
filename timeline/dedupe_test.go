package timeline_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/timeline"
)

// Remember and RememberBatch (here larger than one atomic batch) store a
// batch of results, and Lookup finds
// every key of them (and nothing for a key never remembered).
func TestDedupeRememberBatchAndLookup(t *testing.T) {
	t.Parallel()
	c := testenv.Streams(t)
	ctx := testenv.Context(t, 30*time.Second)
	d := timeline.NewDedupe(c.NC, c.JS)
	var rs []timeline.Remembered
	var keys []string
	for i := 0; i < 1500; i++ {
		k := fmt.Sprintf("alice.id%d", i)
		rs = append(rs, timeline.Remembered{Key: k, Result: events.Result{Conv: "c1", Seq: int64(i + 1), TS: 7}})
		keys = append(keys, k)
	}
	// Pipelined for the first 100, atomic (in two batches) for the rest.
	if err := d.Remember(ctx, rs[:100]); err != nil {
		t.Fatal(err)
	}
	if err := d.RememberBatch(ctx, rs[100:]); err != nil {
		t.Fatal(err)
	}
	if n, err := d.Keys(ctx); err != nil || n != 1500 {
		t.Fatalf("Keys = %d, %v; want 1500", n, err)
	}
	for _, ks := range [][]string{keys[:3], keys[98:102], keys[1099:1102], keys[1497:]} {
		got, err := d.Lookup(ctx, append(ks, "alice.never"))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(ks) {
			t.Fatalf("lookup %v = %v, want %d results", ks, got, len(ks))
		}
		for _, k := range ks {
			var i int
			fmt.Sscanf(k, "alice.id%d", &i)
			if got[k].Seq != int64(i+1) {
				t.Fatalf("lookup %s = %+v, want seq %d", k, got[k], i+1)
			}
		}
	}
}
