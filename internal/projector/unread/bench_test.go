package unread_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/projector/unread"
	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/timeline"
	counts "github.com/seqchat/seqchat/unread"
)

// members is a fixed membership: the benchmark measures Redis, not Postgres
// (the projector's membership cache answers from memory after the first
// event of a conversation anyway).
type members map[string]*events.Conv

func (m members) Get(_ context.Context, conv string) (*events.Conv, error) { return m[conv], nil }
func (m members) Invalidate(string)                                        {}

// BenchmarkUnread measures the unread projection's work per event, one
// pipelined Redis round trip per batch (with the check that the projection
// is there), as the projector does: batches of 500 (a backlog) and of 4
// (what it sees at 1,000 msgs/s, where the per-batch cost dominates):
//
//	go test -run '^$' -bench Unread -benchtime 20000x ./unread/
func BenchmarkUnread(b *testing.B) {
	for _, tc := range []struct {
		name        string
		convs, size int
		batch       int
	}{{"group100", 10, 100, 500}, {"direct", 1000, 2, 500}, {"direct-batch4", 1000, 2, 4}} {
		b.Run(tc.name, func(b *testing.B) {
			ropt, err := redis.ParseURL(testenv.RedisURL())
			if err != nil {
				b.Fatal(err)
			}
			rdb := redis.NewClient(ropt)
			defer rdb.Close()
			store := counts.New(rdb, testenv.Name("bench:")+":")
			defer store.Clear(context.Background())
			if err := store.MarkBuilt(context.Background()); err != nil {
				b.Fatal(err)
			}
			m := members{}
			for c := 0; c < tc.convs; c++ {
				cv := &events.Conv{Kind: "group", Members: map[string]string{}, Joined: map[string]int64{}}
				for u := 0; u < tc.size; u++ {
					cv.Members[fmt.Sprintf("u%d-%d", c, u)] = "member"
				}
				m[fmt.Sprintf("c%d", c)] = cv
			}
			ctx := context.Background()
			batch := tc.batch
			seqs := map[string]int64{}
			b.ReportAllocs()
			b.ResetTimer()
			ops := 0
			for done := 0; done < b.N; done += batch {
				evs := make([]timeline.Stored, 0, batch)
				for i := 0; i < batch && done+i < b.N; i++ {
					conv := fmt.Sprintf("c%d", (done+i)%tc.convs)
					seqs[conv]++
					evs = append(evs, timeline.Stored{Event: events.Event{Conv: conv, Seq: seqs[conv], Kind: events.KindMessage, From: fmt.Sprintf("u%d-0", (done+i)%tc.convs)}})
				}
				o, err := unread.Ops(ctx, m, evs)
				if err != nil {
					b.Fatal(err)
				}
				ops += len(o)
				if built, err := store.ApplyBuilt(ctx, o); err != nil || !built {
					b.Fatal(built, err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(ops)/b.Elapsed().Seconds(), "redis-ops/s")
		})
	}
}
