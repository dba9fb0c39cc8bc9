package history_test

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkHistoryProjector measures the history projector end to end:
// TIMELINE holds b.N message events (100 per conversation), and the
// projector consumes and writes them into Postgres. Batch 4 is what it sees
// at 1,000 msgs/s (a few events per batch: per-batch overhead dominates);
// batch 500 is a backlog.
//
//	go test -run '^$' -bench HistoryProjector -benchtime 10000x ./internal/projector/history/
//
// Allocations include the embedded NATS server's.
func BenchmarkHistoryProjector(b *testing.B) {
	for _, batch := range []int{4, 500} {
		b.Run(fmt.Sprintf("batch%d", batch), func(b *testing.B) {
			r := newRig(b)
			for done, c := 0, 0; done < b.N; c++ {
				n := min(100, b.N-done)
				r.Messages(b, fmt.Sprintf("c%d", c), n)
				done += n
			}
			ctx := context.Background()
			written := func() int {
				var n int
				if err := r.pool.QueryRow(ctx, "SELECT coalesce(sum(last_seq), 0) FROM heads").Scan(&n); err != nil {
					b.Fatal(err)
				}
				return n
			}
			b.ReportAllocs()
			b.ResetTimer()
			stop := r.runProjector(b, batch)
			for written() < b.N {
				time.Sleep(2 * time.Millisecond)
			}
			b.StopTimer()
			stop()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
