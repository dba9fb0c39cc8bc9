package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/postgres"
	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/timeline"
)

// rig is a history store over a database and a TIMELINE of a test's own.
type rig struct {
	pool   *pgxpool.Pool
	writer *postgres.HistoryWriter
	nc     *timeline.Conn
	tl     *timeline.Log
	*testenv.TimelineWriter
}

func newRig(t testing.TB) *rig {
	t.Helper()
	ctx := testenv.Context(t, time.Minute)
	pool, err := postgres.Open(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	nc := testenv.Streams(t)
	return &rig{pool: pool, writer: postgres.NewHistoryWriter(pool), nc: nc, tl: timeline.New(nc.NC, nc.JS), TimelineWriter: testenv.NewTimelineWriter(timeline.New(nc.NC, nc.JS))}
}

func count(t testing.TB, pool *pgxpool.Pool) int {
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM events").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The history never double-applies: writing the same events twice (as the
// projector's redelivery does) changes nothing.
func TestHistoryApplyRedeliveryIdempotent(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.Messages(t, "a", 30)
	got, err := r.tl.Read(context.Background(), "a", 0, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := r.writer.Apply(context.Background(), got); err != nil {
			t.Fatal(err)
		}
		if err := r.writer.Apply(context.Background(), got[10:20]); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, r.pool); n != 30 {
		t.Fatalf("%d rows after repeated applies, want 30", n)
	}
}

// A recall erases its target's body whether the target came in an earlier
// batch or earlier in the same one (the batch's statements run in order),
// and a recall of something that is not a message changes nothing.
func TestHistoryApplyRecalls(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx := testenv.Context(t, time.Minute)
	msg := func(seq int64) timeline.Stored {
		return timeline.Stored{Event: events.Event{Conv: "r", Seq: seq, Kind: events.KindMessage, ID: fmt.Sprintf("m%d", seq), From: "u1", TS: seq, Body: json.RawMessage(`{"text":"x"}`)}, StreamSeq: uint64(seq)}
	}
	recall := func(seq, target int64) timeline.Stored {
		return timeline.Stored{Event: events.Event{Conv: "r", Seq: seq, Kind: events.KindRecall, ID: fmt.Sprintf("m%d", seq), From: "u1", TS: seq, Target: target}, StreamSeq: uint64(seq)}
	}
	if err := r.writer.Apply(ctx, []timeline.Stored{msg(1), msg(2)}); err != nil {
		t.Fatal(err)
	}
	// Recalls of seq 1 (earlier batch), of seq 4 (this batch) and of seq 3,
	// which is itself a recall.
	if err := r.writer.Apply(ctx, []timeline.Stored{recall(3, 1), msg(4), recall(5, 4), recall(6, 3)}); err != nil {
		t.Fatal(err)
	}
	got := map[int64]bool{}
	rs, err := r.pool.Query(ctx, "SELECT seq, recalled, body IS NULL FROM events WHERE conv_id='r' ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	for rs.Next() {
		var seq int64
		var recalled, noBody bool
		if err := rs.Scan(&seq, &recalled, &noBody); err != nil {
			t.Fatal(err)
		}
		if recalled != noBody && recalled {
			t.Fatalf("seq %d recalled but keeps its body", seq)
		}
		got[seq] = recalled
	}
	want := map[int64]bool{1: true, 2: false, 3: false, 4: true, 5: false, 6: false}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("recalled by seq = %v, want %v", got, want)
	}
	var head int64
	if err := r.pool.QueryRow(ctx, "SELECT last_seq FROM heads WHERE conv_id='r'").Scan(&head); err != nil || head != 6 {
		t.Fatalf("head = %d, %v; want 6", head, err)
	}
}

// Invariant 4: with no projector running at all, and with one that has
// written only part of a conversation, a reader sees every appended seq.
func TestReadYourWrites(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	h := postgres.NewHistory(r.pool, r.tl)
	ctx := testenv.Context(t, time.Minute)
	r.Messages(t, "x", 40)
	check := func(what string, from, to int64) {
		t.Helper()
		got, err := h.Range(ctx, "x", from, to)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(got)) != to-from+1 {
			t.Fatalf("%s: Range(%d, %d) gave %d events", what, from, to, len(got))
		}
		for i, e := range got {
			if e.Seq != from+int64(i) || string(e.Body) != fmt.Sprintf(`{"n":%d}`, e.Seq) {
				t.Fatalf("%s: event %d is %+v", what, i, e)
			}
		}
	}
	check("no projection", 1, 40)
	check("no projection, middle", 17, 23)
	// Project a prefix and punch holes in it, as a lagging or concurrent
	// projector can leave.
	prefix, err := r.tl.Read(ctx, "x", 0, 25, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.writer.Apply(ctx, prefix); err != nil {
		t.Fatal(err)
	}
	if _, err := r.pool.Exec(ctx, "DELETE FROM events WHERE seq IN (3, 10, 11, 12)"); err != nil {
		t.Fatal(err)
	}
	check("partial projection", 1, 40)
	check("partial projection, tail", 20, 40)
	head, err := h.Head(ctx, "x")
	if err != nil || head != 40 {
		t.Fatalf("Head = %d, %v; want 40", head, err)
	}
}

// Invariant 4 for recalls: a recall the projector commits while a page is
// being read shows on that page. The test holds the projector's commit of
// the recall (and a lock on heads) open while the reader reads, and commits
// once the reader waits for it: whichever of its queries came first, the
// recall must show.
func TestRecallShowsWhileProjectorCommits(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	h := postgres.NewHistory(r.pool, r.tl)
	ctx := testenv.Context(t, time.Minute)
	r.Messages(t, "x", 1)
	recall := timeline.Entry{Event: &events.Event{Conv: "x", Seq: 2, Kind: events.KindRecall, ID: "r1", From: "u1", TS: 2000, Target: 1}}
	streamSeq, _, err := r.tl.Append(ctx, recall)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := r.tl.Read(ctx, "x", 0, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.writer.Apply(ctx, msg); err != nil {
		t.Fatal(err)
	}

	tx, err := r.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "LOCK TABLE heads IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	type result struct {
		got []events.Event
		err error
	}
	done := make(chan result, 1)
	go func() {
		got, err := h.Range(ctx, "x", 1, 2)
		done <- result{got, err}
	}()
	testenv.Eventually(t, 30*time.Second, "the reader to wait for the projector's commit", func() bool {
		var n int
		_ = r.pool.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname=current_database() AND wait_event_type='Lock'").Scan(&n)
		return n > 0
	})
	// What HistoryWriter.Apply does for the recall, in the held transaction.
	for _, q := range []string{
		fmt.Sprintf("INSERT INTO events (conv_id, seq, stream_seq, kind, cmd_id, sender, ts, target) VALUES ('x', 2, %d, 'recall', 'r1', 'u1', 2000, 1)", streamSeq),
		"UPDATE events SET recalled=true, body=NULL WHERE conv_id='x' AND seq=1 AND kind='message'",
		"INSERT INTO heads (conv_id, last_seq) VALUES ('x', 2) ON CONFLICT (conv_id) DO UPDATE SET last_seq=2",
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if len(res.got) != 2 || !res.got[0].Recalled || res.got[0].Body != nil {
		t.Fatalf("page read across the recall's commit: %+v; want seq 1 recalled, without body", res.got)
	}
}

// Invariant 4 for recalls, however far the projector lags: a recall more
// than ten thousand events past the projection still shows, and the
// sequencer's question (was it recalled?) finds it.
func TestRecallShowsFarBehindProjection(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	h := postgres.NewHistory(r.pool, r.tl)
	ctx := testenv.Context(t, 2*time.Minute)
	r.Messages(t, "x", 1)
	msg, err := r.tl.Read(ctx, "x", 0, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.writer.Apply(ctx, msg); err != nil { // projected up to seq 1
		t.Fatal(err)
	}
	for range 12 {
		r.Messages(t, "x", 1000)
	}
	pos := r.Position("x")
	recall := timeline.Entry{Event: &events.Event{Conv: "x", Seq: pos.Seq + 1, Kind: events.KindRecall, ID: "r1", From: "u1", TS: 2000, Target: 1}, Expect: &pos.StreamSeq}
	if _, _, err := r.tl.Append(ctx, recall); err != nil {
		t.Fatal(err)
	}
	got, err := h.Range(ctx, "x", 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !got[0].Recalled || got[0].Body != nil || got[1].Recalled {
		t.Fatalf("page of a conversation projected up to 1 with a recall at %d: %+v", pos.Seq+1, got)
	}
	if seq, err := h.RecallOf(ctx, "x", 1); err != nil || seq != pos.Seq+1 {
		t.Fatalf("RecallOf(1) = %d, %v; want %d", seq, err, pos.Seq+1)
	}
}

// BenchmarkHistoryRange measures the read a sync replay makes: 1,000
// events of one conversation, all projected, in one Range. allocs/op and
// B/op are per read of 1,000 events.
//
//	go test -run '^$' -bench HistoryRange -benchmem ./internal/postgres/
func BenchmarkHistoryRange(b *testing.B) {
	r := newRig(b)
	ctx := context.Background()
	r.Messages(b, "bench", 1000)
	got, err := r.tl.Read(ctx, "bench", 0, 1000, 0)
	if err != nil {
		b.Fatal(err)
	}
	if err := r.writer.Apply(ctx, got); err != nil {
		b.Fatal(err)
	}
	h := postgres.NewHistory(r.pool, r.tl)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		list, err := h.Range(ctx, "bench", 1, 1000)
		if err != nil || len(list) != 1000 {
			b.Fatalf("%d events, %v", len(list), err)
		}
	}
}
