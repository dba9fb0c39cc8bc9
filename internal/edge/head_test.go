package edge

import (
	"encoding/json"
	"testing"
)

// The edge's hand-read event head agrees with encoding/json on every valid
// JSON input (deliveries are events the sequencer encoded; the hand reader
// does not validate the fields it skips).
func FuzzDecodeHead(f *testing.F) {
	f.Add([]byte(`{"conv":"c1","seq":3,"kind":"message","id":"m1","from":"u1","ts":17,"body":{"text":"hi <b>"}}`))
	f.Add([]byte(`{"Conv":"c1","SEQ":3}`))
	f.Add([]byte(`{"conv":"\u0063","seq":3.0}`))
	f.Add([]byte(`{"conv":"c","seq":1,"conv":"d"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		var want eventHead
		wantErr := json.Unmarshal(b, &want)
		got, err := decodeHead(b)
		if (err == nil) != (wantErr == nil) || (err == nil && got != want) {
			t.Fatalf("decodeHead(%q) = %+v, %v; json.Unmarshal: %+v, %v", b, got, err, want, wantErr)
		}
	})
}
