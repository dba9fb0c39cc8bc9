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
	pos    map[string]timeline.Position
}

func newRig(t testing.TB) *rig {
	t.Helper()
	ctx := testenv.Context(t, time.Minute)
	pool, err := postgres.Open(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	nc := testenv.Connect(t)
	if err := timeline.Ensure(ctx, nc.JS, timeline.Settings{Storage: "file"}); err != nil {
		t.Fatal(err)
	}
	return &rig{pool: pool, writer: postgres.NewHistoryWriter(pool), nc: nc, tl: timeline.New(nc.NC, nc.JS), pos: map[string]timeline.Position{}}
}

// append writes n messages to conv straight into TIMELINE, as the sequencer would.
func (r *rig) append(t testing.TB, conv string, n int) {
	t.Helper()
	var entries []timeline.Entry
	pos := r.pos[conv]
	for i := 0; i < n; i++ {
		seq := pos.Seq + int64(i) + 1
		e := timeline.Entry{Event: &events.Event{Conv: conv, Seq: seq, Kind: events.KindMessage, ID: fmt.Sprintf("m%d", seq), From: "u1", TS: 1000 + seq, Body: json.RawMessage(fmt.Sprintf(`{"n":%d}`, seq))}}
		if i == 0 {
			expect := pos.StreamSeq
			e.Expect = &expect
		}
		entries = append(entries, e)
	}
	first, err := r.tl.AppendBatch(context.Background(), entries)
	if err != nil {
		t.Fatal(err)
	}
	r.pos[conv] = timeline.Position{Seq: pos.Seq + int64(n), StreamSeq: first + uint64(n) - 1}
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
	r.append(t, "a", 30)
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
