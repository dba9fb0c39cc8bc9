package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/postgres"
	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/timeline"
)

func openPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := postgres.Open(testenv.Context(t, time.Minute), testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// richState is everything the projection holds of the richer messages.
func richState(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var b strings.Builder
	rs, err := pool.Query(context.Background(), `SELECT seq, kind, coalesce(convert_from(body, 'UTF8'), '-'), coalesce(convert_from(cur_body, 'UTF8'), '-'),
		edited_seq, coalesce(reactions::text, '-'), coalesce(tsv::text, '-'), recalled FROM events ORDER BY conv_id, seq`)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		vals, _ := rs.Values()
		fmt.Fprintln(&b, vals...)
	}
	rs.Close()
	rs, err = pool.Query(context.Background(), "SELECT conv_id, target, user_id, emoji, seq, on_ FROM reactions ORDER BY 1, 2, 3, 4")
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		vals, _ := rs.Values()
		fmt.Fprintln(&b, vals...)
	}
	rs.Close()
	return b.String()
}

func richEvents() []timeline.Stored {
	on, off := events.Bool(true), events.Bool(false)
	evs := []events.Event{
		{Seq: 1, Kind: events.KindMessage, From: "u1", Body: json.RawMessage(`{"text":"Hello World"}`)},
		{Seq: 2, Kind: events.KindMessage, From: "u2", Body: json.RawMessage(`{"text":"to be recalled"}`), ReplyTo: 1, Mentions: []string{"u1"}},
		{Seq: 3, Kind: events.KindReaction, From: "u2", Target: 1, Emoji: "👍", On: on},
		{Seq: 4, Kind: events.KindReaction, From: "u3", Target: 1, Emoji: "👍", On: on},
		{Seq: 5, Kind: events.KindReaction, From: "u2", Target: 1, Emoji: "👍", On: off},
		{Seq: 6, Kind: events.KindEdit, From: "u1", Target: 1, Body: json.RawMessage(`{"text":"hello again"}`)},
		{Seq: 7, Kind: events.KindEdit, From: "u1", Target: 1, Body: json.RawMessage(`{"text":"hello at last"}`)},
		{Seq: 8, Kind: events.KindEdit, From: "u2", Target: 2, Body: json.RawMessage(`{"text":"secret version"}`)},
		{Seq: 9, Kind: events.KindReaction, From: "u1", Target: 2, Emoji: "❤️", On: on},
		{Seq: 10, Kind: events.KindRecall, From: "u2", Target: 2},
		{Seq: 11, Kind: events.KindReaction, From: "u3", Target: 1, Emoji: "🎉", On: on},
	}
	out := make([]timeline.Stored, len(evs))
	for i, e := range evs {
		e.Conv, e.ID, e.TS = "c1", fmt.Sprintf("id%d", e.Seq), 1000+e.Seq
		out[i] = timeline.Stored{Event: e, StreamSeq: uint64(e.Seq)}
	}
	return out
}

// The projection of edits, reactions and recalls is the same whether the
// events come in one batch or one at a time, and redelivering any of them,
// in any order, changes nothing.
func TestRichProjectionIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	all := richEvents()
	once := openPool(t)
	if err := postgres.NewHistoryWriter(once).Apply(ctx, all); err != nil {
		t.Fatal(err)
	}
	want := richState(t, once)
	for _, line := range []string{
		"1 message {\"text\":\"Hello World\"} {\"text\":\"hello at last\"} 7 {\"🎉\": 1, \"👍\": 1} 'at':2 'hello':1 'last':3 false",
		"2 message - - 0 - - true",
		"8 edit - - 0 - - false",
	} {
		if !strings.Contains(want, line+"\n") {
			t.Fatalf("projection lacks %q:\n%s", line, want)
		}
	}
	one := openPool(t)
	w := postgres.NewHistoryWriter(one)
	for _, s := range all {
		if err := w.Apply(ctx, []timeline.Stored{s}); err != nil {
			t.Fatal(err)
		}
	}
	if got := richState(t, one); got != want {
		t.Fatalf("one at a time:\n%s\nin one batch:\n%s", got, want)
	}
	// Redelivery: the whole stream backwards, then every other event again.
	back := slices.Clone(all)
	slices.Reverse(back)
	for _, s := range back {
		if err := w.Apply(ctx, []timeline.Stored{s}); err != nil {
			t.Fatal(err)
		}
	}
	var odd []timeline.Stored
	for i := 0; i < len(all); i += 2 {
		odd = append(odd, all[i])
	}
	if err := w.Apply(ctx, odd); err != nil {
		t.Fatal(err)
	}
	if got := richState(t, one); got != want {
		t.Fatalf("after redelivery:\n%s\nwant:\n%s", got, want)
	}
}

// BenchmarkReactionProjection measures reaction events per second through
// the history's write (HistoryWriter.Apply), in batches of 500 over 100
// messages of 10 conversations.
func BenchmarkReactionProjection(b *testing.B) {
	ctx := context.Background()
	pool := openPool(b)
	w := postgres.NewHistoryWriter(pool)
	var msgs []timeline.Stored
	for c := 0; c < 10; c++ {
		for s := int64(1); s <= 10; s++ {
			msgs = append(msgs, timeline.Stored{Event: events.Event{Conv: fmt.Sprintf("c%d", c), Seq: s, Kind: events.KindMessage, ID: fmt.Sprint(s), From: "u0", TS: s, Body: json.RawMessage(`{"text":"hi"}`)}})
		}
	}
	if err := w.Apply(ctx, msgs); err != nil {
		b.Fatal(err)
	}
	emojis := []string{"👍", "❤️", "🎉", "😂"}
	seq := int64(10)
	const batch = 500
	b.ResetTimer()
	for n := 0; n < b.N; n += batch {
		stored := make([]timeline.Stored, 0, batch)
		for i := 0; i < batch; i++ {
			seq++
			c := i % 10
			stored = append(stored, timeline.Stored{Event: events.Event{
				Conv: fmt.Sprintf("c%d", c), Seq: seq, Kind: events.KindReaction, ID: fmt.Sprint(seq), From: fmt.Sprintf("u%d", i%50), TS: seq,
				Target: int64(1 + (i/10)%10), Emoji: emojis[i%len(emojis)], On: events.Bool(i%3 != 0),
			}})
		}
		if err := w.Apply(ctx, stored); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
