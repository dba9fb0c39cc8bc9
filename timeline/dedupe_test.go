package timeline_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/timeline"
)

// Remember stores a batch larger than one atomic batch, and Lookup finds
// every key of it (and nothing for a key never remembered).
func TestDedupeRememberBatchAndLookup(t *testing.T) {
	t.Parallel()
	c := testenv.Connect(t)
	ctx := testenv.Context(t, 30*time.Second)
	if err := timeline.Ensure(ctx, c.JS, timeline.Settings{Storage: "file"}); err != nil {
		t.Fatal(err)
	}
	d := timeline.NewDedupe(c.NC)
	var rs []timeline.Remembered
	var keys []string
	for i := 0; i < 1500; i++ {
		k := fmt.Sprintf("alice.id%d", i)
		rs = append(rs, timeline.Remembered{Key: k, Result: events.Result{Conv: "c1", Seq: int64(i + 1), TS: 7}})
		keys = append(keys, k)
	}
	if err := d.Remember(ctx, rs); err != nil {
		t.Fatal(err)
	}
	for _, ks := range [][]string{keys[:3], keys[999:1002], keys[1497:]} {
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
