package edge

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/seqchat/seqchat/events"
)

// A mistyped or malformed frame is refused with bad_request and a message
// that names the field and what it must be, never encoding/json's text;
// the refusal names the frame's id when that parsed.
func TestMalformedFramesSayWhatIsWrong(t *testing.T) {
	for _, tc := range []struct{ in, id, want string }{
		{`{"type":1}`, "", "type must be a string, not a number"},
		{`{"type":"send","id":"s1","conv":7,"body":{}}`, "s1", "conv must be a string, not a number"},
		{`{"type":"recall","id":"r1","conv":"c1","target":"3"}`, "r1", "target must be an integer, not a string"},
		{`{"type":"read","id":"x","conv":"c1","seq":2.5}`, "x", "seq must be an integer, not the number 2.5"},
		{`{"type":"sync","id":"y","cursors":[1]}`, "y", "cursors must be an object of integers, not an array"},
		{`{"type":"sync","id":"y","cursors":{"c1":"0"}}`, "y", "cursors must be an object of integers, not a string"},
		{`{"type":"send","id":{"a":1}}`, "", "id must be a string, not an object"},
		{`{"type":"send",`, "", "frame is not valid JSON"},
		{`{"type" "ping"}`, "", "frame is not valid JSON at byte 9"},
		{`"ping"`, "", "frame must be a JSON object"},
		{"{\"type\":\"\xff\"}", "", "frame must be UTF-8"},
	} {
		_, id, err := decodeFrame([]byte(tc.in))
		if events.CodeOf(err) != events.CodeBadRequest {
			t.Errorf("%s: %v, want bad_request", tc.in, err)
			continue
		}
		msg := events.MessageOf(err)
		if !strings.HasPrefix(msg, tc.want) {
			t.Errorf("%s: message %q, want %q", tc.in, msg, tc.want)
		}
		for _, w := range []string{"Go struct", "Go value", "unmarshal", "of type", "json:", "frame.", "int64", "RawMessage"} {
			if strings.Contains(msg, w) {
				t.Errorf("%s: message %q says %q", tc.in, msg, w)
			}
		}
		if id != tc.id {
			t.Errorf("%s: id %q, want %q", tc.in, id, tc.id)
		}
	}
}

// The hand-written ack says what json.Marshal says.
func TestAckFrameMatchesJSON(t *testing.T) {
	t.Parallel()
	for _, a := range []ackFrame{
		{Type: "ack", ID: "01J9ZX", Conv: "c1", Seq: 7, TS: 1763800000000},
		{Type: "ack", ID: "r1", Conv: "c1"},
		{Type: "ack", ID: "a<b>&\"c\\", Conv: "é\u2028\x01", Seq: -1},
		{Type: "ack", ID: "", Conv: "", TS: 3},
	} {
		want, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.appendJSON(nil); string(got) != string(want) {
			t.Fatalf("ack %+v: %s, json.Marshal says %s", a, got, want)
		}
	}
}
