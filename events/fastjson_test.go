package events

import (
	"encoding/json"
	"reflect"
	"testing"
)

// The fast path decodes exactly what encoding/json decodes, or stands
// aside: for any bytes it accepts, encoding/json accepts them too and gives
// the same event (and the same command).
func FuzzFastDecodeMatchesJSON(f *testing.F) {
	for _, s := range []string{
		`{"conv":"c1","seq":7,"kind":"message","id":"01J","from":"u1","ts":1763800000000,"body":{"text":"hi \"you\"","n":[1,2,{"a":"]}"}]}}`,
		`{"conv":"c1","seq":8,"kind":"recall","id":"r","from":"u1","ts":1,"target":7}`,
		`{"conv":"c1","seq":9,"kind":"member_joined","user":"u2","recalled":true}`,
		` { "conv" : "c1" , "seq" : -3 , "body" : "x" } `,
		`{"op":"send","id":"01J","conv":"c1","from":"u1","body":{"text":"hi"}}`,
		`{"conv":"é","Seq":1}`, `{"conv":"a\u0041"}`, `{"seq":01}`, `{"seq":1.5}`, `{"body":null}`,
		`{"seq":123456789012345678}`, `{"seq":9223372036854775807}`, `{}`, `{"recalled":false,"recalled":true}`,
		"{\"id\":\"\xff\"}", `{"body":{"a":1}x}`, `{"body":[1,}`, `{"conv":"c1"}trailing`,
		`[{"r":"_INBOX.a.1","c":{"op":"send","id":"m1","conv":"c1","from":"u1","body":{"text":"hi"}}},{"r":"_INBOX.a.2","c":{"op":"recall","id":"m2","conv":"c1","from":"u1","target":1},"o":"e1/2"}]`,
		`[]`, ` [ { "r" : "x" } ] `, `[{"c":{"op":"send"},"c":{"id":"a"}}]`, `[{"R":"x"}]`, `[null]`, `[{"r":"x"},]`, `[{"r":"x"}]]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast Event
		if fastEvent(b, &fast) {
			var slow Event
			if err := json.Unmarshal(b, &slow); err != nil {
				t.Fatalf("fast path took %q, encoding/json refuses it: %v", b, err)
			}
			if !reflect.DeepEqual(fast, slow) {
				t.Fatalf("%q: fast %+v, encoding/json %+v", b, fast, slow)
			}
		}
		if fq, ok := fastBatch(b); ok {
			var slow []Queued
			if err := json.Unmarshal(b, &slow); err != nil {
				t.Fatalf("fast path took batch %q, encoding/json refuses it: %v", b, err)
			}
			if !reflect.DeepEqual(fq, slow) {
				t.Fatalf("%q: fast %+v, encoding/json %+v", b, fq, slow)
			}
		}
		var fc Command
		if fastCommand(b, &fc) {
			var slow Command
			if err := json.Unmarshal(b, &slow); err != nil {
				t.Fatalf("fast path took command %q, encoding/json refuses it: %v", b, err)
			}
			if !reflect.DeepEqual(fc, slow) {
				t.Fatalf("%q: fast %+v, encoding/json %+v", b, fc, slow)
			}
		}
	})
}

// What Encode writes takes the fast path.
func TestEncodedEventsTakeTheFastPath(t *testing.T) {
	for _, ev := range []Event{
		{Conv: "c1", Seq: 7, Kind: KindMessage, ID: "01J", From: "u1", TS: 1763800000000, Body: json.RawMessage(`{"text":"hé \"x\""}`)},
		{Conv: "c1", Seq: 8, Kind: KindRecall, ID: "r", From: "u1", TS: 1, Target: 7},
		{Conv: "c1", Seq: 9, Kind: KindMemberJoined, User: "u2", Recalled: true},
	} {
		var got Event
		if !fastEvent(ev.Encode(), &got) || !reflect.DeepEqual(got, ev) {
			t.Fatalf("%s: fast path %v gave %+v", ev.Encode(), fastEvent(ev.Encode(), &got), got)
		}
	}
	c := Command{Op: OpSend, ID: "01J", Conv: "c1", From: "u1", Body: json.RawMessage(`{"text":"hi"}`)}
	b, _ := json.Marshal(c)
	var got Command
	if !fastCommand(b, &got) || !reflect.DeepEqual(got, c) {
		t.Fatalf("%s: fast path gave %+v", b, got)
	}
	q := []Queued{{Reply: "_INBOX.x.1", Cmd: c}, {Reply: "_INBOX.x.2", Cmd: Command{Op: OpRecall, ID: "r", Conv: "c1", From: "u1", Target: 1}, Origin: "edge1/7"}}
	b, _ = json.Marshal(q)
	if got, ok := fastBatch(b); !ok || !reflect.DeepEqual(got, q) {
		t.Fatalf("%s: fast path %v gave %+v", b, ok, got)
	}
}

// An escape after a non-ASCII character is not plain: the fast path must
// leave it to encoding/json rather than keep the backslash.
func TestPlainStringEscapeAfterNonASCII(t *testing.T) {
	for _, v := range []string{`"é\u0026"`, `"é\""`, "\"é\x01\"", `"日本\n"`} {
		if s, ok := PlainString([]byte(v)); ok {
			t.Errorf("PlainString(%s) = %q, true; want false", v, s)
		}
	}
	if s, ok := PlainString([]byte(`"é&"`)); !ok || s != "é&" {
		t.Errorf(`PlainString("é&") = %q, %v`, s, ok)
	}
}

// BenchmarkDecodeBatch decodes a CMDS batch of 16 sends, as the sequencer
// does for every batched CMDS message.
//
//	go test -run '^$' -bench DecodeBatch -benchmem ./events/
func BenchmarkDecodeBatch(b *testing.B) {
	q := make([]Queued, 16)
	for i := range q {
		q[i] = Queued{Reply: "_INBOX.edge1.tok" + string(rune('a'+i)), Cmd: Command{Op: OpSend, ID: "m" + string(rune('a'+i)), Conv: "dm.u1.u2", From: "u1", Body: json.RawMessage(`{"text":"a message of a typical length, some sixty bytes long"}`)}}
	}
	data, _ := json.Marshal(q)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeBatch(data); err != nil {
			b.Fatal(err)
		}
	}
}
