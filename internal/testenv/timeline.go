package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/timeline"
)

// TimelineWriter appends test messages straight into TIMELINE, as the
// sequencer would, for tests of what reads it (projectors, the history
// reader) without a sequencer.
type TimelineWriter struct {
	tl  *timeline.Log
	pos map[string]timeline.Position
}

// NewTimelineWriter writes through tl.
func NewTimelineWriter(tl *timeline.Log) *TimelineWriter {
	return &TimelineWriter{tl: tl, pos: map[string]timeline.Position{}}
}

// Messages appends n messages from u1 to conv, in one batch: seq s has id
// "m<s>", ts 1000+s and body {"n":s}.
func (w *TimelineWriter) Messages(t testing.TB, conv string, n int) {
	t.Helper()
	var entries []timeline.Entry
	pos := w.pos[conv]
	for i := 0; i < n; i++ {
		seq := pos.Seq + int64(i) + 1
		e := timeline.Entry{Event: &events.Event{Conv: conv, Seq: seq, Kind: events.KindMessage, ID: fmt.Sprintf("m%d", seq), From: "u1", TS: 1000 + seq, Body: json.RawMessage(fmt.Sprintf(`{"n":%d}`, seq))}}
		if i == 0 {
			expect := pos.StreamSeq
			e.Expect = &expect
		}
		entries = append(entries, e)
	}
	first, err := w.tl.AppendBatch(context.Background(), entries)
	if err != nil {
		t.Fatal(err)
	}
	w.pos[conv] = timeline.Position{Seq: pos.Seq + int64(n), StreamSeq: first + uint64(n) - 1}
}

// Position is where conv stands after what this writer appended.
func (w *TimelineWriter) Position(conv string) timeline.Position { return w.pos[conv] }
