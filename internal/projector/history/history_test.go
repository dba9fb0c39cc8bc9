package history_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seqchat/seqchat/internal/postgres"
	"github.com/seqchat/seqchat/internal/projector/history"
	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/timeline"
)

type rig struct {
	pool *pgxpool.Pool
	nc   *timeline.Conn
	tl   *timeline.Log
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
	return &rig{pool: pool, nc: nc, tl: timeline.New(nc.NC, nc.JS), TimelineWriter: testenv.NewTimelineWriter(timeline.New(nc.NC, nc.JS))}
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
	p := history.NewProjector(postgres.NewHistoryWriter(r.pool), r.nc.JS, batch, 0, testenv.Logger(t), nil)
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
			r.Messages(t, conv, 100)
		}
	}
	stop := r.runProjector(t, 50)
	testenv.Eventually(t, 20*time.Second, "the projector to start writing", func() bool { return count(t, r.pool) > 0 })
	stop() // mid-stream: whatever was fetched but not acked is redelivered
	mid := count(t, r.pool)
	r.Messages(t, "a", 100)
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
