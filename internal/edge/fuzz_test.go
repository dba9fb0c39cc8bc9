package edge

import (
	"reflect"
	"strings"
	"testing"

	"github.com/seqchat/seqchat/events"
)

// Whatever a client sends in a frame, decoding never panics, refuses with
// bad_request or too_large only, and what it accepts is a frame the
// connection can act on without further checks.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"send","id":"01J","conv":"c1","body":{"text":"hi"}}`,
		`{"type":"recall","id":"r1","conv":"c1","target":3}`,
		`{"type":"read","id":"x","conv":"c1","seq":5}`,
		`{"type":"sync","id":"s","cursors":{"c1":5,"c2":0}}`,
		`{"type":"sync","cursors":{}}`,
		`{"type":"ping"}`,
		`{"type":"send","id":"bad id","conv":"c.1","body":null}`,
		`{"type":"read","id":"x","conv":"c1","seq":-1}`,
		`{"type":"sync","cursors":{"a.b":1e400}}`,
		"{\"type\":\"send\",\"id\":\"a\",\"conv\":\"c\",\"body\":\"\xff\"}",
		`[[[[[[[[[[]]]]]]]]]]`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, id, err := decodeFrame(data)
		if err != nil {
			if c := events.CodeOf(err); c != events.CodeBadRequest && c != events.CodeTooLarge {
				t.Fatalf("refused with %s: %v", c, err)
			}
			for _, w := range []string{"Go struct", "Go value", "unmarshal", "of type", "json:"} {
				if msg := events.MessageOf(err); strings.Contains(msg, w) {
					t.Fatalf("message %q says %q", msg, w)
				}
			}
			return
		}
		if id != fr.ID {
			t.Fatalf("id %q, frame id %q", id, fr.ID)
		}
		switch fr.Type {
		case "ping":
		case "send":
			if fr.Conv == "" || fr.ID == "" || len(fr.Body) == 0 {
				t.Fatalf("accepted an incomplete send: %s", data)
			}
		case "recall":
			if fr.Target == nil || *fr.Target < 1 {
				t.Fatalf("accepted a recall without a target: %s", data)
			}
		case "read":
			if fr.Seq == nil || *fr.Seq < 0 {
				t.Fatalf("accepted a read without a seq: %s", data)
			}
		case "sync":
			for _, cur := range fr.Cursors {
				if cur < 0 {
					t.Fatalf("accepted a negative cursor: %s", data)
				}
			}
		default:
			t.Fatalf("accepted type %q", fr.Type)
		}
	})
}

// What the fast path decodes, it decodes as encoding/json does.
func FuzzFastFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"send","id":"01J","conv":"c1","body":{"text":"hi"}}`,
		`{"type":"send","id":"01J","conv":"c1","body":{"text":"hi \"x\""} , "type":"edit"}`,
		`{"type":"recall","id":"r1","conv":"c1","target":3}`,
		`{"type":"read","id":"x","conv":"c1","seq":-0}`,
		`{"type":"ping","id":"p"}`,
		`{"Type":"ping"}`,
		`{"type":"send","body":null}`,
		`{"type":"send","body":[1,2,{"a":"]"}]}`,
		"{\"type\":\"s\xc3\xa9nd\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast frame
		if !fastFrame(data, &fast) {
			return
		}
		var slow frame
		if err := events.DecodeObject("frame", data, &slow); err != nil {
			t.Fatalf("fast path took %q, encoding/json refuses it: %v", data, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q: fast path %+v, encoding/json %+v", data, fast, slow)
		}
	})
}
