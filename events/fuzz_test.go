package events

import (
	"bytes"
	"encoding/json"
	"testing"
)

// Whatever bytes arrive from TIMELINE, decoding never panics, and an event
// that decodes encodes to JSON that decodes to the same event.
func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"conv":"c1","seq":7,"kind":"message","id":"01J","from":"u1","ts":1763800000000,"body":{"text":"hi"}}`))
	f.Add([]byte(`{"conv":"c1","seq":8,"kind":"recall","id":"r","from":"u1","ts":1,"target":7}`))
	f.Add([]byte(`{"conv":"c1","seq":9,"kind":"member_joined","user":"u2","recalled":true}`))
	f.Add([]byte(`{"seq":1e400}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := DecodeEvent(b)
		if err != nil {
			return
		}
		if len(ev.Body) > 0 && !json.Valid(ev.Body) {
			return // only a RawMessage holding what was given
		}
		again, err := DecodeEvent(ev.Encode())
		if err != nil {
			t.Fatalf("re-decode %s: %v", ev.Encode(), err)
		}
		if again.Conv != ev.Conv || again.Seq != ev.Seq || again.Kind != ev.Kind || again.ID != ev.ID ||
			again.Target != ev.Target || again.User != ev.User || again.Recalled != ev.Recalled {
			t.Fatalf("round trip changed %+v into %+v", ev, again)
		}
	})
}

// Whatever bytes arrive in CMDS, decoding never panics and a decoded
// command's dedupe key is built from its fields.
func FuzzDecodeCommand(f *testing.F) {
	f.Add([]byte(`{"op":"send","id":"01J","conv":"c1","from":"u1","body":{"text":"hi"}}`))
	f.Add([]byte(`{"op":"recall","id":"r1","conv":"c1","from":"u1","target":3}`))
	f.Add([]byte(`{"op":"join","id":"j","conv":"c1","from":"u1","user":"u2"}`))
	f.Add([]byte(`{"op":"send","target":-1}`))
	f.Add([]byte("{\"id\":\"\xff\"}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			return
		}
		if c.DedupeKey() != c.From+"."+c.ID {
			t.Fatal("dedupe key")
		}
		if ValidID(c.ID) && (len(c.ID) == 0 || len(c.ID) > 64 || bytes.ContainsAny([]byte(c.ID), ". *>")) {
			t.Fatalf("ValidID accepted %q", c.ID)
		}
		_ = ValidToken(c.Conv)
		_ = Partition(c.Conv, 8)
	})
}
