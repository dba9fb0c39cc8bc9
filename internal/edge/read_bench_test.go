package edge

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/seqchat/seqchat/events"
)

// BenchmarkInboundFrame measures the socket read path of one client frame
// (a send of a typical size): reading it off the WebSocket and decoding and
// checking it, as readFrames does. allocs/op is per frame (the client's
// write included, which allocates nothing).
//
//	go test -run '^$' -bench InboundFrame -benchmem ./internal/edge/
func BenchmarkInboundFrame(b *testing.B) {
	frame := []byte(`{"type":"send","id":"m-12345","conv":"01JCONVERSATION0000000000","body":{"text":"a message of a typical length, some sixty bytes"}}`)
	done := make(chan error, 1)
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(corkWriter{w}, r, nil)
		if err != nil {
			done <- err
			return
		}
		defer ws.Close()
		var buf frameBuffer
		for i := 0; i < b.N; i++ {
			data, err := buf.read(ws)
			if err != nil {
				done <- err
				return
			}
			if _, _, err := decodeFrame(data); err != nil {
				done <- err
				return
			}
			buf.release()
		}
		done <- nil
	}))
	defer srv.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ws.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := ws.WriteMessage(websocket.TextMessage, frame); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkReplayFrames measures the edge's share of a sync replay: the
// frames of 1,000 events encoded and written to a WebSocket (the client
// reads them). allocs/op and B/op are per replay of 1,000 events.
//
//	go test -run '^$' -bench ReplayFrames -benchmem ./internal/edge/
func BenchmarkReplayFrames(b *testing.B) {
	list := make([]events.Event, 1000)
	for i := range list {
		list[i] = events.Event{Conv: "01JCONVERSATION0000000000", Seq: int64(i + 1), Kind: events.KindMessage, ID: "m-12345",
			From: "01JUSER000000000000000000", TS: 1733140000000 + int64(i), Body: []byte(`{"text":"a message of a typical length, some sixty bytes"}`)}
	}
	read := make(chan error, 1)
	up := websocket.Upgrader{WriteBufferSize: 1024}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(corkWriter{w}, r, nil)
		if err != nil {
			b.Error(err)
			return
		}
		defer ws.Close()
		for i := 0; i < b.N; i++ {
			frames := replayFrames(list, nil)
			if _, err := writeFrames(ws, frames, func() {}); err != nil {
				b.Error(err)
				return
			}
			<-read
		}
	}))
	defer srv.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ws.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for range list {
			_, r, err := ws.NextReader()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				b.Fatal(err)
			}
		}
		read <- nil
	}
}

// The frames of a replay are the bytes live delivery sends for the same
// events.
func TestReplayFramesAreEventFrames(t *testing.T) {
	on := true
	list := []events.Event{
		{Conv: "c1", Seq: 1, Kind: events.KindMessage, ID: "m1", From: "u1", TS: 5, Body: []byte(`{"text": "a <b> & c"}`)},
		{Conv: "c1", Seq: 2, Kind: events.KindReaction, ID: "m2", From: "u2", TS: 6, Target: 1, Emoji: "👍", On: &on},
		{Conv: "c1", Seq: 3, Kind: events.KindRecall, ID: "m3", From: "u1", TS: 7, Target: 1, Recalled: true, Mentions: []string{"u2"}, Reactions: map[string]int64{"x": 2, "a": 1}},
		{},
	}
	got := replayFrames(list, nil)
	if len(got) != len(list) {
		t.Fatalf("%d frames for %d events", len(got), len(list))
	}
	for i := range list {
		if want := eventFrame(list[i].Encode()); !bytes.Equal(got[i], want) {
			t.Errorf("event %d: replay frame\n%s\nlive frame\n%s", i, got[i], want)
		}
	}
}
