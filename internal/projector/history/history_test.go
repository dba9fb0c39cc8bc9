package history_test

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
	"github.com/seqchat/seqchat/internal/projector/history"
	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/timeline"
)

type rig struct {
	pool *pgxpool.Pool
	nc   *timeline.Conn
	tl   *timeline.Log
	pos  map[string]timeline.Position
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
	return &rig{pool: pool, nc: nc, tl: timeline.New(nc.NC, nc.JS), pos: map[string]timeline.Position{}}
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

type row struct {
	Conv, Kind, ID, Sender string
	Seq, StreamSeq, TS     int64
	Body                   string
}

func rows(t *testing.T, pool *pgxpool.Pool) []row {
	t.Helper()
	rs, err := pool.Query(context.Background(), "SELECT conv_id, seq, stream_seq, kind, cmd_id, sender, ts, coalesce(body, '') FROM events ORDER BY conv_id, seq")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var r row
		var body []byte
		if err := rs.Scan(&r.Conv, &r.Seq, &r.StreamSeq, &r.Kind, &r.ID, &r.Sender, &r.TS, &body); err != nil {
			t.Fatal(err)
		}
		r.Body = string(body)
		out = append(out, r)
	}
	return out
}

func (r *rig) runProjector(t testing.TB, batch int) (stop func()) {
	p := history.NewProjector(postgres.NewHistoryWriter(r.pool), r.nc.JS, batch, testenv.Logger(t), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		// As its lease holder does in production: a Run that ends with
		// an error (its consumer must be set up again) runs again.
		for ctx.Err() == nil {
			if err := p.Run(ctx); err != nil {
				t.Log("projector restarts:", err)
			}
		}
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

func count(t testing.TB, pool *pgxpool.Pool) int {
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM events").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Invariant 6: a projector stopped mid-stream without acking what it had
// (and redelivered) converges to the timeline; a rebuild into a fresh
// database gives identical rows.
func TestProjectorConvergesAndRebuilds(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for i := 0; i < 10; i++ {
		for _, conv := range []string{"a", "b", "c"} {
			r.append(t, conv, 100)
		}
	}
	stop := r.runProjector(t, 50)
	testenv.Eventually(t, 20*time.Second, "the projector to start writing", func() bool { return count(t, r.pool) > 0 })
	stop() // mid-stream: whatever was fetched but not acked is redelivered
	mid := count(t, r.pool)
	r.append(t, "a", 100)
	r.runProjector(t, 50)
	testenv.Eventually(t, 30*time.Second, "the projector to catch up", func() bool { return count(t, r.pool) >= 3100 })
	t.Logf("stopped after %d rows, converged to %d", mid, count(t, r.pool))
	projected := rows(t, r.pool)
	ctx := testenv.Context(t, time.Minute)
	fresh, err := postgres.Open(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	n, err := history.Rebuild(ctx, postgres.NewHistoryWriter(fresh), r.nc.JS, 200)
	if err != nil || n != 3100 {
		t.Fatalf("rebuild replayed %d events, %v; want 3100", n, err)
	}
	rebuilt := rows(t, fresh)
	if !reflect.DeepEqual(projected, rebuilt) {
		t.Fatalf("live projection (%d rows) differs from a rebuild (%d rows)", len(projected), len(rebuilt))
	}
	// Rebuild the live database too: it must equal the fresh one exactly.
	if _, err := history.Rebuild(ctx, postgres.NewHistoryWriter(r.pool), r.nc.JS, 500); err != nil {
		t.Fatal(err)
	}
	if live := rows(t, r.pool); !reflect.DeepEqual(live, rebuilt) {
		t.Fatalf("rebuilt live history differs from the fresh rebuild (%d vs %d rows)", len(live), len(rebuilt))
	}
	for conv, want := range map[string]int{"a": 1100, "b": 1000, "c": 1000} {
		seq := int64(0)
		for _, row := range rebuilt {
			if row.Conv == conv {
				seq++
				if row.Seq != seq || row.Body != fmt.Sprintf(`{"n":%d}`, seq) {
					t.Fatalf("%s: row %+v where seq %d belongs", conv, row, seq)
				}
			}
		}
		if seq != int64(want) {
			t.Fatalf("%s: %d rows, want %d", conv, seq, want)
		}
	}
}

// Invariant 4: with no projector running at all, and with one that has
// written only part of a conversation, a reader sees every appended seq.
func TestReadYourWrites(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	reader := history.NewReader(r.pool, r.tl)
	ctx := testenv.Context(t, time.Minute)
	r.append(t, "x", 40)
	check := func(what string, from, to int64) {
		t.Helper()
		got, err := reader.Range(ctx, "x", from, to)
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
	if err := postgres.NewHistoryWriter(r.pool).Apply(ctx, prefix); err != nil {
		t.Fatal(err)
	}
	if _, err := r.pool.Exec(ctx, "DELETE FROM events WHERE seq IN (3, 10, 11, 12)"); err != nil {
		t.Fatal(err)
	}
	check("partial projection", 1, 40)
	check("partial projection, tail", 20, 40)
	head, err := reader.Head(ctx, "x")
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
	reader := history.NewReader(r.pool, r.tl)
	ctx := testenv.Context(t, time.Minute)
	r.append(t, "x", 1)
	recall := timeline.Entry{Event: &events.Event{Conv: "x", Seq: 2, Kind: events.KindRecall, ID: "r1", From: "u1", TS: 2000, Target: 1}}
	streamSeq, _, err := r.tl.Append(ctx, recall)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := r.tl.Read(ctx, "x", 0, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.NewHistoryWriter(r.pool).Apply(ctx, msg); err != nil {
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
		got, err := reader.Range(ctx, "x", 1, 2)
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
	reader := history.NewReader(r.pool, r.tl)
	ctx := testenv.Context(t, 2*time.Minute)
	r.append(t, "x", 1)
	msg, err := r.tl.Read(ctx, "x", 0, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.NewHistoryWriter(r.pool).Apply(ctx, msg); err != nil { // projected up to seq 1
		t.Fatal(err)
	}
	for range 12 {
		r.append(t, "x", 1000)
	}
	pos := r.pos["x"]
	recall := timeline.Entry{Event: &events.Event{Conv: "x", Seq: pos.Seq + 1, Kind: events.KindRecall, ID: "r1", From: "u1", TS: 2000, Target: 1}, Expect: &pos.StreamSeq}
	if _, _, err := r.tl.Append(ctx, recall); err != nil {
		t.Fatal(err)
	}
	got, err := reader.Range(ctx, "x", 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !got[0].Recalled || got[0].Body != nil || got[1].Recalled {
		t.Fatalf("page of a conversation projected up to 1 with a recall at %d: %+v", pos.Seq+1, got)
	}
	if seq, err := reader.RecallOf(ctx, "x", 1); err != nil || seq != pos.Seq+1 {
		t.Fatalf("RecallOf(1) = %d, %v; want %d", seq, err, pos.Seq+1)
	}
}
