package timeline_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/timeline"
)

func setup(t *testing.T) (*timeline.Log, context.Context) {
	t.Helper()
	tl, ctx, _ := setupConn(t)
	return tl, ctx
}

// setupConn is setup that also gives the connection the Log uses.
func setupConn(t *testing.T) (*timeline.Log, context.Context, *timeline.Conn) {
	t.Helper()
	c := testenv.Connect(t)
	ctx := testenv.Context(t, 30*time.Second)
	if err := timeline.Ensure(ctx, c.JS, timeline.Settings{Storage: "file", FastBatches: true}); err != nil {
		t.Fatal(err)
	}
	// Ensure twice: updating in place must work and keep the data.
	if err := timeline.Ensure(ctx, c.JS, timeline.Settings{Storage: "file", DuplicateWindow: time.Minute, FastBatches: true}); err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	return timeline.New(c.NC, c.JS), ctx, c
}

func ev(conv string, seq int64) *events.Event {
	return &events.Event{Conv: conv, Seq: seq, Kind: events.KindMessage, ID: fmt.Sprintf("m%d", seq), From: "u1", TS: 1, Body: []byte(`{"n":1}`)}
}

func u64(v uint64) *uint64 { return &v }

func TestAppendBatchAndRead(t *testing.T) {
	t.Parallel()
	tl, ctx := setup(t)
	// Interleave two conversations in one batch: only the first entry per
	// conversation carries the expectation.
	var entries []timeline.Entry
	for i := int64(1); i <= 5; i++ {
		for _, conv := range []string{"a", "b"} {
			e := timeline.Entry{Event: ev(conv, i), MsgID: fmt.Sprintf("%s-%d", conv, i)}
			if i == 1 {
				e.Expect = u64(0)
			}
			entries = append(entries, e)
		}
	}
	first, err := tl.AppendBatch(ctx, entries)
	if err != nil {
		t.Fatal(err)
	}
	if first != 1 {
		t.Fatalf("first stream seq = %d, want 1", first)
	}
	pos, err := tl.Last(ctx, "b")
	if err != nil || pos.Seq != 5 || pos.StreamSeq != 10 {
		t.Fatalf("Last(b) = %+v, %v; want seq 5 at #10", pos, err)
	}
	for _, tc := range []struct {
		after int64
		limit int
		hint  uint64
		want  []int64
	}{
		{0, 10, 0, []int64{1, 2, 3, 4, 5}},
		{2, 2, 0, []int64{3, 4}},
		{2, 2, 3, []int64{3, 4}}, // hint: the stream seq of a's seq 2
		{4, 10, 0, []int64{5}},
		{5, 10, 0, nil},
		{9, 10, 0, nil},
	} {
		got, err := tl.Read(ctx, "a", tc.after, tc.limit, tc.hint)
		if err != nil {
			t.Fatalf("Read(a, %d, %d): %v", tc.after, tc.limit, err)
		}
		var seqs []int64
		for _, s := range got {
			if s.Conv != "a" {
				t.Fatalf("read an event of %s", s.Conv)
			}
			seqs = append(seqs, s.Seq)
		}
		if fmt.Sprint(seqs) != fmt.Sprint(tc.want) {
			t.Errorf("Read(a, after %d, limit %d) = %v, want %v", tc.after, tc.limit, seqs, tc.want)
		}
	}
	if got, err := tl.Read(ctx, "nobody", 0, 10, 0); err != nil || len(got) != 0 {
		t.Fatalf("Read of an empty conversation = %v, %v", got, err)
	}
}

// A lost race is ErrConflict on a single replica (JetStream's error 10071)
// and on a replicated stream (R3 answers 10164 for the same thing).
func TestAppendConflictAndDuplicate(t *testing.T) {
	t.Parallel()
	t.Run("R1", func(t *testing.T) {
		t.Parallel()
		tl, ctx := setup(t)
		testAppendConflictAndDuplicate(t, tl, ctx)
	})
	t.Run("R3", func(t *testing.T) {
		t.Parallel()
		ctx := testenv.Context(t, time.Minute)
		c, err := timeline.Connect(ctx, testenv.NATSCluster(t, 3), "", timeline.Sync{}, t.Name(), testenv.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		if err := timeline.Ensure(ctx, c.JS, timeline.Settings{Storage: "file", Replicas: 3}); err != nil {
			t.Fatal(err)
		}
		testAppendConflictAndDuplicate(t, timeline.New(c.NC, c.JS), ctx)
	})
}

func testAppendConflictAndDuplicate(t *testing.T, tl *timeline.Log, ctx context.Context) {
	// Writers racing on one conversation, all expecting it empty: one wins,
	// every other one is a conflict, never an unclassified failure. (On a
	// replicated stream the losers that arrive while the winner is still
	// being proposed are refused as 10164, the later ones as 10071.)
	const racers = 50
	futures := make([]jetstream.PubAckFuture, racers)
	for i := range futures {
		f, err := tl.AppendAsync(timeline.Entry{Event: ev("race", 1), MsgID: fmt.Sprintf("race-%d", i), Expect: u64(0)})
		if err != nil {
			t.Fatal(err)
		}
		futures[i] = f
	}
	won := 0
	for i, f := range futures {
		switch _, _, err := timeline.Settle(ctx, f); {
		case err == nil:
			won++
		case !errors.Is(err, timeline.ErrConflict):
			t.Fatalf("racer %d: err = %v, want ErrConflict", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d racers appended, want 1", won)
	}
	s1, dup, err := tl.Append(ctx, timeline.Entry{Event: ev("c", 1), MsgID: "x1", Expect: u64(0)})
	if err != nil || dup {
		t.Fatalf("first append: %v dup=%v", err, dup)
	}
	// A writer that believes the conversation is still empty loses.
	if _, _, err := tl.Append(ctx, timeline.Entry{Event: ev("c", 1), MsgID: "x2", Expect: u64(0)}); !errors.Is(err, timeline.ErrConflict) {
		t.Fatalf("stale append: err = %v, want ErrConflict", err)
	}
	// So does a batch holding a stale expectation, and it stores nothing.
	if _, err := tl.AppendBatch(ctx, []timeline.Entry{
		{Event: ev("d", 1), MsgID: "d1", Expect: u64(0)},
		{Event: ev("c", 2), MsgID: "x3", Expect: u64(0)},
	}); !errors.Is(err, timeline.ErrConflict) {
		t.Fatalf("stale batch: err = %v, want ErrConflict", err)
	}
	if pos, _ := tl.Last(ctx, "d"); pos.Seq != 0 {
		t.Fatalf("a failed batch stored part of itself: d at %+v", pos)
	}
	// The same message id again is a duplicate pointing at the original.
	s, dup, err := tl.Append(ctx, timeline.Entry{Event: ev("c", 2), MsgID: "x1", Expect: u64(s1)})
	if err != nil || !dup || s != s1 {
		t.Fatalf("duplicate append = %d, dup=%v, %v; want %d, true", s, dup, err, s1)
	}
	got, err := tl.Get(ctx, s1)
	if err != nil || got.Seq != 1 || got.ID != "m1" {
		t.Fatalf("Get(%d) = %+v, %v", s1, got, err)
	}
}

func TestLocateLongConversation(t *testing.T) {
	t.Parallel()
	tl, ctx := setup(t)
	// Two conversations of 600 events, interleaved, so the binary search has
	// foreign events to skip.
	pos := map[string]uint64{}
	for start := int64(1); start <= 600; start += 200 {
		var entries []timeline.Entry
		for i := start; i < start+200; i++ {
			for _, conv := range []string{"x", "y"} {
				e := timeline.Entry{Event: ev(conv, i), MsgID: fmt.Sprintf("%s-%d", conv, i)}
				if i == start {
					e.Expect = u64(pos[conv])
				}
				entries = append(entries, e)
			}
		}
		first, err := tl.AppendBatch(ctx, entries)
		if err != nil {
			t.Fatal(err)
		}
		pos["x"], pos["y"] = first+uint64(len(entries))-2, first+uint64(len(entries))-1
	}
	for _, after := range []int64{0, 1, 137, 298, 599} {
		got, err := tl.Read(ctx, "y", after, 3, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 || got[0].Seq != after+1 {
			t.Fatalf("Read(y, after %d) starts at %v", after, got)
		}
	}
	all, err := tl.Read(ctx, "x", 0, 5000, 0)
	if err != nil || len(all) != 600 {
		t.Fatalf("Read(x, all) = %d events, %v", len(all), err)
	}
	for i, s := range all {
		if s.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, s.Seq)
		}
	}
}

// Ensure on streams that are already as configured changes nothing: an
// update races consumers being created by other processes.
func TestEnsureLeavesUnchangedStreams(t *testing.T) {
	t.Parallel()
	c := testenv.Connect(t)
	ctx := testenv.Context(t, 30*time.Second)
	// The JetStream API is NATS subjects: listen to the create and update
	// requests Ensure makes.
	calls, err := c.NC.SubscribeSync("$JS.API.STREAM.*.>")
	if err != nil {
		t.Fatal(err)
	}
	count := func() (creates, updates int) {
		c.NC.Flush()
		for {
			m, err := calls.NextMsg(200 * time.Millisecond)
			if err != nil {
				return
			}
			switch {
			case strings.HasPrefix(m.Subject, "$JS.API.STREAM.CREATE."):
				creates++
			case strings.HasPrefix(m.Subject, "$JS.API.STREAM.UPDATE."):
				updates++
			}
		}
	}
	settings := timeline.Settings{Storage: "file"}
	if err := timeline.Ensure(ctx, c.JS, settings); err != nil {
		t.Fatal(err)
	}
	if creates, _ := count(); creates < 2 {
		t.Fatalf("first Ensure made %d stream creates, want at least 2 (CMDS, TIMELINE)", creates)
	}
	if err := timeline.Ensure(ctx, c.JS, settings); err != nil {
		t.Fatal(err)
	}
	if creates, updates := count(); creates+updates != 0 {
		t.Fatalf("second Ensure of unchanged streams made %d creates and %d updates", creates, updates)
	}
	settings.DuplicateWindow = time.Minute
	if err := timeline.Ensure(ctx, c.JS, settings); err != nil {
		t.Fatal(err)
	}
	if _, updates := count(); updates == 0 {
		t.Fatal("a changed setting was not applied")
	}
}

// Reads share one reply subscription: concurrent batched reads of different
// conversations each get exactly their own answers.
func TestConcurrentReadsShareReplies(t *testing.T) {
	t.Parallel()
	tl, ctx := setup(t)
	convs := []string{"p", "q", "r", "s"}
	var entries []timeline.Entry
	for i := int64(1); i <= 50; i++ {
		for _, conv := range convs {
			e := timeline.Entry{Event: ev(conv, i), MsgID: fmt.Sprintf("%s-%d", conv, i)}
			if i == 1 {
				e.Expect = u64(0)
			}
			entries = append(entries, e)
		}
	}
	if _, err := tl.AppendBatch(ctx, entries); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8*len(convs))
	for range 8 {
		for _, conv := range convs {
			go func() {
				got, err := tl.Read(ctx, conv, 10, 30, 0)
				if err == nil && len(got) != 30 {
					err = fmt.Errorf("read %s: %d events, want 30", conv, len(got))
				}
				for i, s := range got {
					if err == nil && (s.Conv != conv || s.Seq != int64(11+i)) {
						err = fmt.Errorf("read %s: event %d is %s/%d", conv, i, s.Conv, s.Seq)
					}
				}
				errs <- err
			}()
		}
	}
	for range 8 * len(convs) {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
