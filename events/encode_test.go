package events

import (
	"encoding/json"
	"testing"
)

// The hand-written encoding of events, commands and command batches is
// json.Marshal's, byte for byte, whatever the strings and the body hold.
func FuzzEncodeMatchesJSON(f *testing.F) {
	f.Add("c1", int64(7), "message", "01J", "u1", int64(1763800000000), []byte(`{"text":"hi there"}`), int64(0), "", false, int64(0), "", "", uint8(0), int64(0), "")
	f.Add("c1", int64(8), "recall", "r", "u1", int64(1), []byte(nil), int64(7), "", true, int64(3), "u2", "👍", uint8(1), int64(9), "👍")
	f.Add("c\u2028", int64(-1), "edit", `a"b`, "<u>", int64(0), []byte(` { "a" : [1, 2] } `), int64(1), "u&2", false, int64(0), "x\xff", "", uint8(2), int64(-4), "")
	f.Add("c", int64(1), "message", "i", "u", int64(2), []byte(`{"t":"<b>\u2028"}`), int64(0), "", false, int64(0), "", "", uint8(0), int64(0), "")
	f.Add("c", int64(1), "message", "i", "u", int64(2), []byte(`{"t":`), int64(0), "", false, int64(0), "", "", uint8(0), int64(0), "")
	f.Add("c", int64(1), "message", "i", "u", int64(2), []byte(`"a\"b\\"`), int64(0), "", false, int64(0), "", "", uint8(0), int64(0), "")
	f.Fuzz(func(t *testing.T, conv string, seq int64, kind, id, from string, ts int64, body []byte, target int64, user string, recalled bool, replyTo int64, mention, emoji string, on uint8, editedSeq int64, reaction string) {
		var onp *bool
		if on > 0 {
			v := on == 1
			onp = &v
		}
		var mentions []string
		if mention != "" {
			mentions = []string{mention, "u9"}
		}
		var reactions map[string]int64
		if reaction != "" {
			reactions = map[string]int64{reaction: 2, "zz": 1, "a": 3}
		}
		e := Event{Conv: conv, Seq: seq, Kind: Kind(kind), ID: id, From: from, TS: ts, Body: body, Target: target, User: user,
			Recalled: recalled, ReplyTo: replyTo, Mentions: mentions, Emoji: emoji, On: onp, Edited: editedSeq > 0, EditedSeq: editedSeq, Reactions: reactions}
		want, err := json.Marshal(&e)
		got := e.Encode()
		if err != nil {
			if got != nil {
				t.Fatalf("Encode = %s where json.Marshal fails: %v", got, err)
			}
			return
		}
		if string(got) != string(want) {
			t.Fatalf("Encode = %s, json.Marshal = %s", got, want)
		}
		c := Command{Op: Op(kind), ID: id, Conv: conv, From: from, Body: body, Target: target, User: user, ReplyTo: replyTo, Mentions: mentions, Emoji: emoji, On: onp}
		wantC, _ := json.Marshal(&c)
		if gotC := c.AppendJSON(nil); string(gotC) != string(wantC) {
			t.Fatalf("Command.AppendJSON = %s, json.Marshal = %s", gotC, wantC)
		}
		q := []Queued{{Reply: user, Cmd: c}, {Reply: "r.2", Cmd: Command{Op: OpSend, ID: "x"}, Origin: from}}
		wantQ, _ := json.Marshal(q)
		if gotQ := AppendBatch(nil, q); string(gotQ) != string(wantQ) {
			t.Fatalf("AppendBatch = %s, json.Marshal = %s", gotQ, wantQ)
		}
	})
}

func BenchmarkEncodeEvent(b *testing.B) {
	yes := true
	e := Event{Conv: "01M8Y0ECJNFV2ATYN26J4721PB", Seq: 14001, Kind: KindMessage, ID: "r1a2b3", From: "01M8Y0ECJNFV2ATYN26J4721PC",
		TS: 1764763000000, Body: json.RawMessage(`{"text":"missed one, and a few more words"}`), Mentions: []string{"u2"}, On: &yes}
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = e.Encode()
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(&e)
		}
	})
}
