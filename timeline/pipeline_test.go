package timeline_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/timeline"
)

// pipelined builds entries for convs' events from seq from on, n each,
// interleaved: the first of each conversation expects its stream sequence
// (expect[conv]), the rest follow it unchecked, as the sequencer builds
// them.
func pipelined(from int64, n int, expect map[string]uint64, convs ...string) []timeline.Entry {
	var entries []timeline.Entry
	for i := int64(0); i < int64(n); i++ {
		for _, conv := range convs {
			e := timeline.Entry{Event: ev(conv, from+i), MsgID: fmt.Sprintf("%s-%d", conv, from+i)}
			if i == 0 {
				e.Expect = u64(expect[conv])
			}
			entries = append(entries, e)
		}
	}
	return entries
}

// lastStreamSeq is TIMELINE's last stream sequence.
func lastStreamSeq(t *testing.T, ctx context.Context, c *timeline.Conn) uint64 {
	t.Helper()
	st, err := c.JS.Stream(ctx, timeline.TimelineStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// wantSeqs checks that conv's events are exactly seqs 1..n, in order.
func wantSeqs(t *testing.T, ctx context.Context, tl *timeline.Log, conv string, n int64) {
	t.Helper()
	got, err := tl.Read(ctx, conv, 0, 1000, 0)
	if err != nil {
		t.Fatalf("Read(%s): %v", conv, err)
	}
	if int64(len(got)) != n {
		t.Fatalf("%s holds %d events, want %d", conv, len(got), n)
	}
	for i, s := range got {
		if s.Seq != int64(i)+1 {
			t.Fatalf("%s: event %d has seq %d", conv, i, s.Seq)
		}
	}
}

// stoppedShort appends entries, which hold what (a conflict, a duplicate),
// and checks that only the first want of them were stored: TIMELINE ends
// at stream sequence last, nothing after the refusal in it.
func stoppedShort(t *testing.T, ctx context.Context, tl *timeline.Log, c *timeline.Conn, what string, entries []timeline.Entry, want int, last uint64) {
	t.Helper()
	stored, _, err := tl.AppendPipelined(ctx, entries)
	if err != nil || stored != want {
		t.Fatalf("AppendPipelined with %s = %d stored, %v; want %d", what, stored, err, want)
	}
	if got := lastStreamSeq(t, ctx, c); got != last {
		t.Fatalf("TIMELINE ends at #%d, want #%d: something after %s was stored", got, last, what)
	}
}

func TestAppendPipelined(t *testing.T) {
	t.Parallel()
	tl, ctx, c := setupConn(t)

	// A whole batch, conversations interleaved and several events each.
	stored, first, err := tl.AppendPipelined(ctx, pipelined(1, 4, nil, "a", "b", "c"))
	if err != nil || stored != 12 || first != 1 {
		t.Fatalf("AppendPipelined = %d stored from #%d, %v; want 12 from #1", stored, first, err)
	}
	// The next batch goes right behind it, on the prediction.
	at := map[string]uint64{"a": 10, "b": 11, "c": 12}
	stored, first, err = tl.AppendPipelined(ctx, pipelined(5, 2, at, "a", "b", "c"))
	if err != nil || stored != 6 || first != 13 {
		t.Fatalf("second AppendPipelined = %d stored from #%d, %v; want 6 from #13", stored, first, err)
	}
	for _, conv := range []string{"a", "b", "c"} {
		wantSeqs(t, ctx, tl, conv, 6)
	}

	// A conflict in the middle: b expects a stream sequence it is not at.
	// What comes before it is stored, nothing after it (a's and c's later
	// events would otherwise be stored without their predecessors).
	at = map[string]uint64{"a": 16, "b": 99, "c": 18}
	stoppedShort(t, ctx, tl, c, "a conflict", pipelined(7, 2, at, "a", "b", "c"), 1, 19)
	wantSeqs(t, ctx, tl, "a", 7)
	wantSeqs(t, ctx, tl, "b", 6)

	// A duplicate in the middle (c's seq 7 under the id of c's seq 6) is
	// skipped by the server; the message after it finds the stream short
	// of its prediction, so the stored part ends there too.
	entries := pipelined(7, 1, map[string]uint64{"b": 17, "c": 18}, "b", "c")
	entries = append(entries, pipelined(8, 1, map[string]uint64{"a": 19}, "a")...)
	entries[1].MsgID = "c-6"
	stoppedShort(t, ctx, tl, c, "a duplicate", entries, 1, 20)
	wantSeqs(t, ctx, tl, "a", 7)
	wantSeqs(t, ctx, tl, "c", 6)

	// Another writer moves the stream: the prediction no longer holds, so
	// the next batch is refused at its first message, and the one after it
	// (the stream read again) is stored.
	other := timeline.New(c.NC, c.JS)
	if _, _, err := other.Append(ctx, timeline.Entry{Event: ev("d", 1), MsgID: "d-1", Expect: u64(0)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tl.Append(ctx, timeline.Entry{Event: ev("c", 7), MsgID: "c-7", Expect: u64(18)}); err != nil {
		t.Fatal(err) // an append around the pipeline on the same Log: the prediction is dropped
	}
	if _, _, err := other.Append(ctx, timeline.Entry{Event: ev("d", 2), MsgID: "d-2", Expect: u64(21)}); err != nil {
		t.Fatal(err)
	}
	stored, first, err = tl.AppendPipelined(ctx, pipelined(8, 2, map[string]uint64{"b": 20, "c": 22}, "b", "c"))
	if err != nil || stored != 4 || first != 24 {
		t.Fatalf("AppendPipelined after other writers = %d stored from #%d, %v; want 4 from #24", stored, first, err)
	}
	other2 := timeline.New(c.NC, c.JS)
	if _, _, err := other2.Append(ctx, timeline.Entry{Event: ev("d", 3), MsgID: "d-3", Expect: u64(23)}); err != nil {
		t.Fatal(err)
	}
	stored, _, err = tl.AppendPipelined(ctx, pipelined(10, 1, map[string]uint64{"b": 26}, "b"))
	if err != nil || stored != 0 {
		t.Fatalf("AppendPipelined on a stale prediction = %d stored, %v; want 0", stored, err)
	}
	stored, first, err = tl.AppendPipelined(ctx, pipelined(10, 1, map[string]uint64{"b": 26}, "b"))
	if err != nil || stored != 1 || first != 29 {
		t.Fatalf("AppendPipelined after reading the stream again = %d stored from #%d, %v; want 1 from #29", stored, first, err)
	}
	wantSeqs(t, ctx, tl, "b", 10)
	wantSeqs(t, ctx, tl, "c", 9)
	wantSeqs(t, ctx, tl, "d", 3)
}

// TestAppendPipelinedLong: more than one fast batch's worth goes as
// several, one after the other.
func TestAppendPipelinedLong(t *testing.T) {
	t.Parallel()
	tl, ctx := setup(t)
	stored, first, err := tl.AppendPipelined(ctx, pipelined(1, 1100, nil, "a", "b"))
	if err != nil || stored != 2200 || first != 1 {
		t.Fatalf("AppendPipelined = %d stored from #%d, %v; want 2200 from #1", stored, first, err)
	}
	wantSeqs(t, ctx, tl, "a", 1000) // Read gives at most 1000 at once
}

// TestAppendPipelinedWithoutFastBatches: where TIMELINE takes no fast
// batches nothing is pipelined; the caller appends all of it another way.
func TestAppendPipelinedWithoutFastBatches(t *testing.T) {
	t.Parallel()
	c := testenv.Streams(t) // FastBatches unset
	tl := timeline.New(c.NC, c.JS)
	ctx := testenv.Context(t, 30*time.Second)
	stored, _, err := tl.AppendPipelined(ctx, pipelined(1, 2, nil, "a"))
	if err != nil || stored != 0 {
		t.Fatalf("AppendPipelined = %d stored, %v; want 0 stored", stored, err)
	}
	if last := lastStreamSeq(t, ctx, c); last != 0 {
		t.Fatalf("TIMELINE ends at #%d, want nothing stored", last)
	}
}
