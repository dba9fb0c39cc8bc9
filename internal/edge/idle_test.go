package edge

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The idle reader takes the client's pongs itself and leaves the frames
// around them to gorilla intact (pongs behind a buffered frame are
// gorilla's): a pong, a message, two pongs, a message, a close.
func TestIdleReaderTakesPongs(t *testing.T) {
	type result struct {
		pongs, gorillaPongs int
		msgs                []string
		err                 error
	}
	done := make(chan result, 1)
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(corkWriter{w}, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer ws.Close()
		br := ws.NetConn().(*corkConn).br
		raw := rawConn(ws.NetConn())
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		var res result
		ws.SetPongHandler(func(string) error { res.gorillaPongs++; return nil })
		for {
			for br.Buffered() == 0 {
				waitReadable(raw)
				if !skipPongs(br, func() { res.pongs++ }) {
					break
				}
			}
			_, m, err := ws.ReadMessage()
			if err != nil {
				res.err = err
				done <- res
				return
			}
			res.msgs = append(res.msgs, string(m))
		}
	}))
	defer srv.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	deadline := time.Now().Add(time.Second)
	write := func(kind int, data string) {
		t.Helper()
		var err error
		if kind == websocket.PongMessage {
			err = ws.WriteControl(kind, []byte(data), deadline)
		} else {
			err = ws.WriteMessage(kind, []byte(data))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	write(websocket.PongMessage, "")
	time.Sleep(20 * time.Millisecond) // the reader is idle again
	write(websocket.TextMessage, "one")
	write(websocket.PongMessage, "p1")
	write(websocket.PongMessage, strings.Repeat("x", 125))
	write(websocket.TextMessage, "two")
	time.Sleep(20 * time.Millisecond)
	write(websocket.CloseMessage, string(websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")))
	res := <-done
	if res.pongs < 1 || res.pongs+res.gorillaPongs != 3 || strings.Join(res.msgs, ",") != "one,two" || !websocket.IsCloseError(res.err, websocket.CloseNormalClosure) {
		t.Fatalf("%d+%d pongs, messages %q, end %v; want 3 pongs (the first one the idle reader's), one and two, a normal close", res.pongs, res.gorillaPongs, res.msgs, res.err)
	}
}

// A silent client's read deadline ends the idle wait, and the read after
// it fails with the timeout.
func TestIdleReaderDeadline(t *testing.T) {
	done := make(chan error, 1)
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(corkWriter{w}, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer ws.Close()
		_ = ws.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		waitReadable(rawConn(ws.NetConn()))
		skipPongs(ws.NetConn().(*corkConn).br, func() {})
		_, _, err = ws.ReadMessage()
		done <- err
	}))
	defer srv.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	select {
	case err := <-done:
		var ne interface{ Timeout() bool }
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("read after the deadline: %v, want a timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the idle wait outlived its deadline")
	}
}
