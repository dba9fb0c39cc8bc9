package edge

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// countingListener counts the writes to the sockets it accepts.
type countingListener struct {
	net.Listener
	writes *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.writes}, nil
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) { c.writes.Add(1); return c.Conn.Write(p) }

// Frames queued together leave in one write, however many and however big
// (up to corkLimit), and arrive intact and in order; beyond corkLimit they
// stream in bursts.
func TestQueuedFramesLeaveInOneWrite(t *testing.T) {
	var writes atomic.Int64
	frames := make([][]byte, 0, 40)
	for i := range 40 {
		size := 40
		if i%10 == 3 {
			size = 5000 // bigger than gorilla's write buffer: fragmented, still one write
		}
		frames = append(frames, []byte(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", size))))
	}
	big := make([][]byte, 0, 40)
	for i := range 40 {
		big = append(big, []byte(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("y", 4000))))
	}
	counts := make(chan [2]int64, 1)
	up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(corkWriter{w}, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer ws.Close()
		deadline := func() { _ = ws.SetWriteDeadline(time.Now().Add(5 * time.Second)) }
		before := writes.Load()
		if n, err := writeFrames(ws, frames, deadline); err != nil || n != len(frames) {
			t.Errorf("writeFrames = %d, %v", n, err)
		}
		mid := writes.Load()
		if n, err := writeFrames(ws, big, deadline); err != nil || n != len(big) {
			t.Errorf("writeFrames = %d, %v", n, err)
		}
		counts <- [2]int64{mid - before, writes.Load() - mid}
		_, _, _ = ws.ReadMessage() // until the client closes
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = countingListener{l, &writes}
	srv.Start()
	defer srv.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i, want := range append(append([][]byte{}, frames...), big...) {
		_, got, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("frame %d differs: %.40s… want %.40s…", i, got, want)
		}
	}
	c := <-counts
	if c[0] != 1 {
		t.Errorf("40 queued frames (%d bytes) took %d writes, want 1", total(frames), c[0])
	}
	// 160 KB in bursts of corkLimit: a few writes, not 40.
	if want := int64(total(big)/corkLimit + 1); c[1] < 2 || c[1] > want+1 {
		t.Errorf("40 frames of 4 KB took %d writes, want about %d", c[1], want)
	}
}

func total(frames [][]byte) int {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	return n
}

// TestCorkedDeadlineHoldsForTheFlush: a deadline set while corked is not
// lost: the flush that sends the gathered frames runs under it.
func TestCorkedDeadlineHoldsForTheFlush(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	cc := &corkConn{Conn: a}
	cc.cork()
	if err := cc.SetWriteDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Write([]byte("gathered")); err != nil {
		t.Fatalf("corked write: %v", err)
	}
	// Nobody reads b: without the deadline the flush would block forever.
	if err := cc.uncork(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("flush past its deadline: err = %v, want a deadline error", err)
	}
}

// TestEarlierDeadlineIsSet: skipping deadlines that moved only a little
// later never skips one that moved earlier.
func TestEarlierDeadlineIsSet(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	cc := &corkConn{Conn: a}
	if err := cc.SetWriteDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := cc.SetWriteDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write past its deadline: err = %v, want a deadline error", err)
	}
}
