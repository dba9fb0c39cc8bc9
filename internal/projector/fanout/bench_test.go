package fanout_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/activity"
	"github.com/seqchat/seqchat/internal/projector/fanout"
	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/timeline"
)

// members is a fixed membership: two users per conversation.
type members map[string]*events.Conv

func (m members) Get(_ context.Context, conv string) (*events.Conv, error) { return m[conv], nil }
func (m members) Invalidate(string)                                        {}

// BenchmarkFanout measures the fanout projector end to end: TIMELINE holds
// b.N message events in 100 direct conversations whose members are all
// connected (in Redis presence) on one edge; the projector consumes them and
// publishes one delivery per event. Batch 4 is what it sees at 1,000
// msgs/s, batch 500 a backlog.
//
//	go test -run '^$' -bench Fanout -benchtime 20000x ./internal/fanout/
//
// Allocations include the embedded NATS server's.
func BenchmarkFanout(b *testing.B) {
	for _, batch := range []int{4, 500} {
		b.Run(fmt.Sprintf("batch%d", batch), func(b *testing.B) {
			ctx := context.Background()
			nc := testenv.Streams(b)
			ropt, err := redis.ParseURL(testenv.RedisURL())
			if err != nil {
				b.Fatal(err)
			}
			rdb := redis.NewClient(ropt)
			defer rdb.Close()
			pres := activity.NewPresence(rdb, testenv.Name("fb")+":", time.Minute)
			const convs = 100
			m := members{}
			for c := range convs {
				cv := &events.Conv{Kind: "direct", Members: map[string]string{}, Joined: map[string]int64{}}
				for u := range 2 {
					user := fmt.Sprintf("u%d-%d", c, u)
					cv.Members[user] = "member"
					if _, err := pres.Connect(ctx, "e1", activity.Conn{User: user, ID: user}); err != nil {
						b.Fatal(err)
					}
				}
				m[fmt.Sprintf("c%d", c)] = cv
			}
			tl := timeline.New(nc.NC, nc.JS)
			seqs := map[string]int64{}
			body := json.RawMessage(`{"text":"a message of a typical length, some sixty bytes"}`)
			var last uint64
			for done := 0; done < b.N; done += 100 {
				var entries []timeline.Entry
				for i := done; i < min(done+100, b.N); i++ {
					conv := fmt.Sprintf("c%d", i%convs)
					seqs[conv]++
					entries = append(entries, timeline.Entry{Event: &events.Event{Conv: conv, Seq: seqs[conv], Kind: events.KindMessage, ID: fmt.Sprintf("m%d", i), From: fmt.Sprintf("u%d-0", i%convs), TS: 1, Body: body}})
				}
				first, err := tl.AppendBatch(ctx, entries)
				if err != nil {
					b.Fatal(err)
				}
				last = first + uint64(len(entries)) - 1
			}
			// The projector starts new consumers at the stream's end: make
			// this one start at its beginning.
			if _, err := nc.JS.CreateOrUpdateConsumer(ctx, timeline.TimelineStream, jetstream.ConsumerConfig{
				Durable: fanout.ConsumerName, AckPolicy: jetstream.AckAllPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
			}); err != nil {
				b.Fatal(err)
			}
			p := fanout.New(nc.NC, nc.JS, m, pres, batch, testenv.Logger(b), nil)
			rctx, cancel := context.WithCancel(ctx)
			defer cancel()
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			go func() {
				for rctx.Err() == nil {
					_ = p.Run(rctx)
				}
			}()
			for {
				cons, err := nc.JS.Consumer(ctx, timeline.TimelineStream, fanout.ConsumerName)
				if err == nil {
					if info, err := cons.Info(ctx); err == nil && info.AckFloor.Stream >= last {
						break
					}
				}
				time.Sleep(2 * time.Millisecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}
