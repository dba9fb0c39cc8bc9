package timeline_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/timeline"
)

// BenchmarkHeadAndTail is what a history read asks of TIMELINE: the
// conversation's head (Last) and its unprojected tail (Read of the last
// few events), on one replica and on three (read through a server's own
// connection, whichever replica it holds).
func BenchmarkHeadAndTail(b *testing.B) {
	for _, replicas := range []int{1, 3} {
		b.Run(fmt.Sprintf("R%d", replicas), func(b *testing.B) {
			ctx := testenv.Context(b, 5*time.Minute)
			var tl *timeline.Log
			if replicas == 1 {
				c := testenv.Connect(b)
				if err := timeline.Ensure(ctx, c.JS, timeline.Settings{Storage: "file"}); err != nil {
					b.Fatal(err)
				}
				tl = timeline.New(c.NC, c.JS)
			} else {
				tl = replicatedLogs(b, ctx)[0]
			}
			conv := "bench"
			var last uint64
			for i := int64(1); i <= 100; i++ {
				s, _, err := tl.Append(ctx, timeline.Entry{Event: ev(conv, i), MsgID: fmt.Sprintf("b-%d", i)})
				if err != nil {
					b.Fatal(err)
				}
				last = s
			}
			time.Sleep(3 * time.Second) // let followers join the direct-get group
			b.Run("Last", func(b *testing.B) {
				for b.Loop() {
					if _, err := tl.Last(ctx, conv); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("ReadTail5", func(b *testing.B) {
				for b.Loop() {
					got, err := tl.Read(ctx, conv, 95, 100, last-10)
					if err != nil || len(got) != 5 {
						b.Fatal(len(got), err)
					}
				}
			})
			b.Run("Get", func(b *testing.B) {
				for b.Loop() {
					if _, err := tl.Get(ctx, last); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
