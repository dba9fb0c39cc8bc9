package timeline_test

import (
	"fmt"
	"slices"
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
	// With a key never remembered; and one key alone, found or not (a
	// plain direct get rather than a multi-subject one).
	lookups := [][]string{append(keys[:3:3], "alice.never"), append(keys[98:102:102], "alice.never"), append(keys[1099:1102:1102], "alice.never"), append(keys[1497:], "alice.never"),
		keys[7:8], keys[1200:1201], {"alice.never"}}
	for _, l := range lookups {
		ks := slices.DeleteFunc(slices.Clone(l), func(k string) bool { return k == "alice.never" })
		got, err := d.Lookup(ctx, l)
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
