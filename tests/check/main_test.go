package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/seqchat/seqchat/tests/check/checker"
)

// A clean run: users a and b in conversation c1. a sends m1, m2 (acked 1, 2),
// b sends n1 (3), a reconnects, syncs from 3, sends m3 (4) and resends it
// (the same ack again), then recalls m1 (5). b has read up to 2.
func cleanRun() ([]checker.Record, checker.State) {
	h := []checker.Record{
		{T: "connect", Client: "a", Conn: "a/1"},
		{T: "connect", Client: "b", Conn: "b/1"},
		{T: "sync", Client: "a", Conn: "a/1", Cursors: map[string]int64{"c1": 0}},
		{T: "sync", Client: "b", Conn: "b/1", Cursors: map[string]int64{"c1": 0}},
		{T: "synced", Client: "a", Conn: "a/1", Heads: map[string]int64{"c1": 0}},
		{T: "synced", Client: "b", Conn: "b/1", Heads: map[string]int64{"c1": 0}},
		{T: "send", Client: "a", Conn: "a/1", Conv: "c1", ID: "m1"},
		{T: "send", Client: "a", Conn: "a/1", Conv: "c1", ID: "m2"},
		{T: "ack", Client: "a", Conn: "a/1", Conv: "c1", ID: "m1", Seq: 1},
		{T: "event", Client: "b", Conn: "b/1", Conv: "c1", Seq: 1, ID: "m1", From: "a", Kind: "message"},
		{T: "ack", Client: "a", Conn: "a/1", Conv: "c1", ID: "m2", Seq: 2},
		{T: "event", Client: "b", Conn: "b/1", Conv: "c1", Seq: 2, ID: "m2", From: "a", Kind: "message"},
		{T: "send", Client: "b", Conn: "b/1", Conv: "c1", ID: "n1"},
		{T: "ack", Client: "b", Conn: "b/1", Conv: "c1", ID: "n1", Seq: 3},
		{T: "event", Client: "a", Conn: "a/1", Conv: "c1", Seq: 3, ID: "n1", From: "b", Kind: "message"},
		{T: "disconnect", Client: "a", Conn: "a/1"},
		{T: "connect", Client: "a", Conn: "a/2"},
		{T: "sync", Client: "a", Conn: "a/2", Cursors: map[string]int64{"c1": 2}},
		// Sent live before the edge read the sync, then replayed by it: allowed.
		{T: "event", Client: "a", Conn: "a/2", Conv: "c1", Seq: 3, ID: "n1", From: "b", Kind: "message"},
		{T: "event", Client: "a", Conn: "a/2", Conv: "c1", Seq: 3, ID: "n1", From: "b", Kind: "message"},
		{T: "synced", Client: "a", Conn: "a/2", Heads: map[string]int64{"c1": 3}},
		{T: "send", Client: "a", Conn: "a/2", Conv: "c1", ID: "m3"},
		{T: "send", Client: "a", Conn: "a/2", Conv: "c1", ID: "m3", Resend: true},
		{T: "ack", Client: "a", Conn: "a/2", Conv: "c1", ID: "m3", Seq: 4},
		{T: "ack", Client: "a", Conn: "a/2", Conv: "c1", ID: "m3", Seq: 4},
		{T: "event", Client: "b", Conn: "b/1", Conv: "c1", Seq: 4, ID: "m3", From: "a", Kind: "message"},
		{T: "event", Client: "b", Conn: "b/1", Conv: "c1", Seq: 5, ID: "r1", From: "a", Kind: "recall"},
	}
	msg := func(seq int64, from, id, text string) checker.Event {
		return checker.Event{Conv: "c1", Seq: seq, Kind: "message", ID: id, From: from, Body: json.RawMessage(`{"text":"` + text + `"}`), StreamSeq: uint64(seq)}
	}
	st := checker.State{
		Timeline: []checker.Event{
			msg(1, "a", "m1", "one"), msg(2, "a", "m2", "two"), msg(3, "b", "n1", "three"), msg(4, "a", "m3", "four"),
			{Conv: "c1", Seq: 5, Kind: "recall", ID: "r1", From: "a", Target: 1, StreamSeq: 5},
		},
		HistoryLoaded: true,
		History: []checker.Row{
			{Conv: "c1", Seq: 1, Kind: "message", CmdID: "m1", Sender: "a", Recalled: true},
			{Conv: "c1", Seq: 2, Kind: "message", CmdID: "m2", Sender: "a", Body: []byte(`{"text": "two"}`)},
			{Conv: "c1", Seq: 3, Kind: "message", CmdID: "n1", Sender: "b", Body: []byte(`{"text":"three"}`)},
			{Conv: "c1", Seq: 4, Kind: "message", CmdID: "m3", Sender: "a", Body: []byte(`{"text":"four"}`)},
			{Conv: "c1", Seq: 5, Kind: "recall", CmdID: "r1", Sender: "a", Target: 1},
		},
		Members: []checker.Member{
			{Conv: "c1", User: "a", JoinedSeq: 1},
			{Conv: "c1", User: "b", JoinedSeq: 1, ReadSeq: 2},
		},
		UnreadLoaded: true,
		Unread: map[string]map[string][]int64{
			"a": {"c1": {3}},
			"b": {"c1": {4}},
		},
	}
	return h, st
}

// clone deep-copies what the doctors change.
func clone(h []checker.Record, st checker.State) ([]checker.Record, checker.State) {
	h = slices.Clone(h)
	st.Timeline = slices.Clone(st.Timeline)
	st.History = slices.Clone(st.History)
	st.Members = slices.Clone(st.Members)
	u := map[string]map[string][]int64{}
	for user, convs := range st.Unread {
		u[user] = map[string][]int64{}
		for c, s := range convs {
			u[user][c] = slices.Clone(s)
		}
	}
	st.Unread = u
	return h, st
}

func find(h []checker.Record, f func(checker.Record) bool) int {
	for i, r := range h {
		if f(r) {
			return i
		}
	}
	panic("record not found")
}

func isEvent(conn string, seq int64) func(checker.Record) bool {
	return func(r checker.Record) bool { return r.T == "event" && r.Conn == conn && r.Seq == seq }
}

func TestCheckFindsEveryKindOfViolation(t *testing.T) {
	cases := []struct {
		name   string
		want   string // the kind that must be found; "" for none at all
		doctor func(h []checker.Record, st *checker.State) []checker.Record
	}{
		{"clean run", "", func(h []checker.Record, st *checker.State) []checker.Record { return h }},
		{"acked message missing from TIMELINE", checker.LostAcked, func(h []checker.Record, st *checker.State) []checker.Record {
			return append(h, checker.Record{T: "send", Client: "b", Conn: "b/1", Conv: "c1", ID: "n2"},
				checker.Record{T: "ack", Client: "b", Conn: "b/1", Conv: "c1", ID: "n2", Seq: 6})
		}},
		{"acked message appended twice", checker.DuplicateMessage, func(h []checker.Record, st *checker.State) []checker.Record {
			e := st.Timeline[3]
			e.Seq, e.StreamSeq = 6, 6
			st.Timeline = append(st.Timeline, e)
			return h
		}},
		{"ack seq differs from the event's", checker.AckSeqMismatch, func(h []checker.Record, st *checker.State) []checker.Record {
			st.Timeline[2].ID, st.Timeline[3].ID = "m3", "n1"
			st.Timeline[2].From, st.Timeline[3].From = "a", "b"
			return h
		}},
		{"two acks of one command disagree", checker.AckSeqMismatch, func(h []checker.Record, st *checker.State) []checker.Record {
			i := find(h, func(r checker.Record) bool { return r.T == "ack" && r.ID == "m3" })
			h[i+1].Seq = 5
			return h
		}},
		{"seq gap in TIMELINE", checker.SeqGap, func(h []checker.Record, st *checker.State) []checker.Record {
			st.Timeline = slices.Delete(st.Timeline, 2, 3)
			return h
		}},
		{"seq stored out of order", checker.SeqGap, func(h []checker.Record, st *checker.State) []checker.Record {
			st.Timeline[2], st.Timeline[3] = st.Timeline[3], st.Timeline[2]
			return h
		}},
		{"duplicate seq in TIMELINE", checker.SeqDuplicate, func(h []checker.Record, st *checker.State) []checker.Record {
			st.Timeline = append(st.Timeline, checker.Event{Conv: "c1", Seq: 2, Kind: "message", ID: "x", From: "b", StreamSeq: 6})
			return h
		}},
		{"one connection's messages reordered", checker.SenderOrder, func(h []checker.Record, st *checker.State) []checker.Record {
			st.Timeline[0].ID, st.Timeline[1].ID = "m2", "m1"
			for i := range h {
				if h[i].ID == "m1" && h[i].T != "send" {
					h[i].Seq = 2
				} else if h[i].ID == "m2" && h[i].T != "send" {
					h[i].Seq = 1
				}
			}
			for _, i := range []int{find(h, isEvent("b/1", 1)), find(h, isEvent("b/1", 2))} {
				h[i].Seq = 3 - h[i].Seq
			}
			return h
		}},
		{"delivery skips a seq", checker.DeliveryGap, func(h []checker.Record, st *checker.State) []checker.Record {
			return slices.Delete(h, find(h, isEvent("b/1", 1)), find(h, isEvent("b/1", 1))+1)
		}},
		{"synced before its replay was complete", checker.DeliveryGap, func(h []checker.Record, st *checker.State) []checker.Record {
			i := find(h, func(r checker.Record) bool { return r.T == "synced" && r.Conn == "a/2" })
			h[i].Heads = map[string]int64{"c1": 5}
			return h
		}},
		{"delivery out of order", checker.DeliveryOutOfOrder, func(h []checker.Record, st *checker.State) []checker.Record {
			i, j := find(h, isEvent("b/1", 1)), find(h, isEvent("b/1", 2))
			h[i], h[j] = h[j], h[i]
			return h
		}},
		{"event delivered twice", checker.DeliveryDuplicate, func(h []checker.Record, st *checker.State) []checker.Record {
			i := find(h, isEvent("b/1", 2))
			return slices.Insert(h, i+1, h[i])
		}},
		{"own message delivered as event and acked", checker.DeliveryDuplicate, func(h []checker.Record, st *checker.State) []checker.Record {
			i := find(h, func(r checker.Record) bool { return r.T == "ack" && r.ID == "n1" })
			return slices.Insert(h, i, checker.Record{T: "event", Client: "b", Conn: "b/1", Conv: "c1", Seq: 3, ID: "n1", From: "b", Kind: "message"})
		}},
		{"sync replay misses a seq", checker.DeliveryGap, func(h []checker.Record, st *checker.State) []checker.Record {
			i := find(h, func(r checker.Record) bool { return r.T == "sync" && r.Conn == "a/2" })
			h[i].Cursors = map[string]int64{"c1": 1}
			return h
		}},
		{"live event at or below the head after synced", checker.DeliveryDuplicate, func(h []checker.Record, st *checker.State) []checker.Record {
			i := find(h, func(r checker.Record) bool { return r.T == "synced" && r.Conn == "a/2" })
			return slices.Insert(h, i+1, checker.Record{T: "event", Client: "a", Conn: "a/2", Conv: "c1", Seq: 3, ID: "n1", From: "b", Kind: "message"})
		}},
		{"event differs from TIMELINE", checker.DeliveryMismatch, func(h []checker.Record, st *checker.State) []checker.Record {
			h[find(h, isEvent("b/1", 2))].ID = "forged"
			return h
		}},
		{"history row missing", checker.HistoryMismatch, func(h []checker.Record, st *checker.State) []checker.Record {
			st.History = st.History[:4]
			return h
		}},
		{"history row extra", checker.HistoryMismatch, func(h []checker.Record, st *checker.State) []checker.Record {
			st.History = append(st.History, checker.Row{Conv: "c1", Seq: 6, Kind: "message", CmdID: "zz", Sender: "b"})
			return h
		}},
		{"history body differs", checker.HistoryMismatch, func(h []checker.Record, st *checker.State) []checker.Record {
			st.History[2].Body = []byte(`{"text":"tampered"}`)
			return h
		}},
		{"recall not applied to history", checker.HistoryMismatch, func(h []checker.Record, st *checker.State) []checker.Record {
			st.History[0].Recalled, st.History[0].Body = false, []byte(`{"text":"one"}`)
			return h
		}},
		{"unread count missing a message", checker.UnreadMismatch, func(h []checker.Record, st *checker.State) []checker.Record {
			st.Unread["b"]["c1"] = nil
			return h
		}},
		{"unread counts the sender's own message", checker.UnreadMismatch, func(h []checker.Record, st *checker.State) []checker.Record {
			st.Unread["a"]["c1"] = append(st.Unread["a"]["c1"], 4)
			return h
		}},
		{"unread ignores the read pointer", checker.UnreadMismatch, func(h []checker.Record, st *checker.State) []checker.Record {
			st.Unread["b"]["c1"] = []int64{2, 4}
			return h
		}},
		{"unread keeps a recalled message", checker.UnreadMismatch, func(h []checker.Record, st *checker.State) []checker.Record {
			st.Members[1].ReadSeq = 0
			st.Unread["b"]["c1"] = []int64{1, 2, 4}
			return h
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, st := clone(cleanRun())
			h = tc.doctor(h, &st)
			rep := checker.Check(h, st, checker.Options{})
			t.Log(rep.Summary())
			if tc.want == "" {
				if !rep.OK() {
					t.Fatalf("clean run reported violations:\n%s", rep)
				}
				if rep.Stats.RepeatAcks != 1 || rep.Stats.Acked != 4 || rep.Stats.Unacked != 0 {
					t.Fatalf("stats: %+v", rep.Stats)
				}
				return
			}
			if rep.Counts[tc.want] == 0 {
				t.Fatalf("want %s found, got:\n%s", tc.want, rep)
			}
			if !strings.Contains(rep.String(), "FAIL") {
				t.Fatalf("report does not say FAIL:\n%s", rep)
			}
		})
	}
}

// Scoping to some conversations leaves the others' problems out, but never
// an ack's.
func TestCheckScope(t *testing.T) {
	h, st := clone(cleanRun())
	st.Timeline = append(st.Timeline, checker.Event{Conv: "other", Seq: 2, Kind: "message", ID: "x", From: "z"})
	if rep := checker.Check(h, st, checker.Options{Convs: map[string]bool{"c1": true}}); !rep.OK() {
		t.Fatalf("out-of-scope gap reported:\n%s", rep)
	}
	// Unscoped: the other conversation's gap, and its missing history row.
	if rep := checker.Check(h, st, checker.Options{}); rep.Counts[checker.SeqGap] != 1 || rep.Counts[checker.HistoryMismatch] != 1 {
		t.Fatalf("want the gap of conversation other and its missing row:\n%s", rep)
	}
	// An ack is checked whatever the scope.
	h = append(h, checker.Record{T: "ack", Client: "z", Conn: "z/1", Conv: "other", ID: "lost", Seq: 3})
	if rep := checker.Check(h, st, checker.Options{Convs: map[string]bool{"c1": true}}); rep.Counts[checker.LostAcked] != 1 {
		t.Fatalf("want the lost ack found out of scope:\n%s", rep)
	}
}

func TestReadHistory(t *testing.T) {
	h, _ := cleanRun()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, r := range h {
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
	}
	buf.WriteString("\n")
	got, err := checker.ReadHistory(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(h) || got[7].ID != "m2" || got[2].Cursors["c1"] != 0 || !got[22].Resend {
		t.Fatalf("round trip lost records: %d of %d", len(got), len(h))
	}
	if _, err := checker.ReadHistory(strings.NewReader("{\"t\":\"send\"}\nnot json\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("want a line-2 error, got %v", err)
	}
}
