package protocol_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/internal/wiring"
)

// The protocol promises no latency: every command gets an answer (the
// server gives up after CHAT_COMMAND_TIMEOUT, 10 s, and answers
// unavailable, which a client meets by sending the same id again later),
// and live delivery and the projections follow when they can. On a quiet
// machine at 1,000 msgs/s answers and deliveries take about 0.1 s at p99
// (docs/performance.md); on a 2-core machine shared with other builds the
// load generator has seen 20 s deliveries at p99. So the waits are long
// enough for a starved server and still catch one that stalls or loses
// something.
const (
	within   = 30 * time.Second // any one wait: an answer, a delivery, a projection catching up
	retryFor = time.Minute      // how long a command answered unavailable or rate_limited is sent again
)

// serverURL is the server under test: CHAT_TEST_SERVER_URL (run with
// CHAT_RATE_LIMITS=off: the checks register many users from one address),
// or else a one-process server of the test's own.
func serverURL(t *testing.T) string {
	t.Helper()
	if u := os.Getenv("CHAT_TEST_SERVER_URL"); u != "" {
		return strings.TrimSuffix(u, "/")
	}
	a, err := wiring.Start(context.Background(), testenv.Config(t), testenv.Logger(t), wiring.AllRoles...)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() { _ = a.Stop() })
	return "http://" + a.Addr
}

// retries counts commands answered unavailable or rate_limited and sent
// again, as the protocol tells clients to: logged, as a sign of overload.
var retries atomic.Int64

type server struct {
	t    *testing.T
	base string
}

type user struct {
	id, name, token string
}

// call does one REST request and decodes a 2xx answer into out; it returns
// the status and the raw answer.
func (s *server) call(method, path, token string, in, out any) (int, []byte) {
	s.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, s.base+path, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v (after %v)", method, path, err, time.Since(start).Round(time.Millisecond))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return resp.StatusCode, b
}

// must is call that fails the test unless the answer is want.
func (s *server) must(want int, method, path, token string, in, out any) {
	s.t.Helper()
	if code, b := s.call(method, path, token, in, out); code != want {
		s.t.Fatalf("%s %s: %d %s, want %d", method, path, code, b, want)
	}
}

// command sends a command over REST, again with the same id while the
// server answers unavailable or rate_limited (the protocol's retry), and
// decodes the 200 into out.
func (s *server) command(path, token string, in, out any) {
	s.t.Helper()
	deadline := time.Now().Add(retryFor)
	for {
		code, b := s.call("POST", path, token, in, out)
		if code == 200 {
			return
		}
		if (code == 503 || code == 429) && time.Now().Before(deadline) {
			retries.Add(1)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		s.t.Fatalf("POST %s: %d %s", path, code, b)
	}
}

func (s *server) user(prefix string) user {
	s.t.Helper()
	name := testenv.Name(prefix)
	s.must(201, "POST", "/v1/users", "", map[string]string{"username": name, "password": "protocol-check"}, nil)
	var r struct {
		Token  string `json:"token"`
		UserID string `json:"user_id"`
	}
	s.must(200, "POST", "/v1/sessions", "", map[string]string{"username": name, "password": "protocol-check"}, &r)
	return user{id: r.UserID, name: name, token: r.Token}
}

func (s *server) direct(a, b user) string {
	s.t.Helper()
	var r struct{ ID string }
	if code, body := s.call("POST", "/v1/conversations", a.token, map[string]any{"kind": "direct", "members": []string{b.id}}, &r); code != 201 && code != 200 {
		s.t.Fatalf("create direct conversation: %d %s", code, body)
	}
	return r.ID
}

func (s *server) group(owner user, members ...user) string {
	s.t.Helper()
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.id
	}
	var r struct{ ID string }
	s.must(201, "POST", "/v1/conversations", owner.token, map[string]any{"kind": "group", "title": "protocol", "members": ids}, &r)
	return r.ID
}

// event is an event as history pages and the socket show it.
type event struct {
	Conv     string          `json:"conv"`
	Seq      int64           `json:"seq"`
	Kind     string          `json:"kind"`
	ID       string          `json:"id"`
	From     string          `json:"from"`
	TS       int64           `json:"ts"`
	Body     json.RawMessage `json:"body"`
	Target   int64           `json:"target"`
	User     string          `json:"user"`
	Recalled bool            `json:"recalled"`
}

type page struct {
	Events  []event `json:"events"`
	Head    int64   `json:"head"`
	HasMore bool    `json:"has_more"`
}

func (s *server) after(u user, conv string, after int64, limit int) page {
	s.t.Helper()
	var p page
	s.must(200, "GET", fmt.Sprintf("/v1/conversations/%s/messages?after_seq=%d&limit=%d", conv, after, limit), u.token, nil, &p)
	return p
}

// send sends a message over REST and returns its seq.
func (s *server) send(u user, conv, id, text string) int64 {
	s.t.Helper()
	var r struct {
		Seq int64 `json:"seq"`
		TS  int64 `json:"ts"`
	}
	s.command("/v1/conversations/"+conv+"/messages", u.token, map[string]any{"id": id, "body": map[string]string{"text": text}}, &r)
	if r.Seq < 1 || r.TS < 1 {
		s.t.Fatalf("send %s: answer without seq or ts: %+v", id, r)
	}
	return r.Seq
}

// eventually polls cond until it holds, failing the test after within
// with what cond saw last.
func eventually(t *testing.T, what string, cond func() (bool, any)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			b, _ := json.Marshal(seen)
			t.Fatalf("not within %v: %s; last seen %s", within, what, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// frame is any server frame.
type frame struct {
	Type  string           `json:"type"`
	ID    string           `json:"id"`
	Conv  string           `json:"conv"`
	Seq   int64            `json:"seq"`
	TS    int64            `json:"ts"`
	Kind  string           `json:"kind"`
	From  string           `json:"from"`
	Code  string           `json:"code"`
	Heads map[string]int64 `json:"heads"`
	Body  json.RawMessage  `json:"body"`
	Msg   string           `json:"message"`
}

// socket is one WebSocket connection; a goroutine reads its frames.
type socket struct {
	t      *testing.T
	name   string
	ws     *websocket.Conn
	wmu    sync.Mutex
	frames chan frame
	err    chan error
}

func (s *server) dial(u user) *socket {
	s.t.Helper()
	wu, _ := url.Parse(s.base)
	wu.Scheme = map[string]string{"https": "wss"}[wu.Scheme]
	if wu.Scheme == "" {
		wu.Scheme = "ws"
	}
	wu.Path, wu.RawQuery = "/v1/ws", "token="+url.QueryEscape(u.token)
	d := websocket.Dialer{HandshakeTimeout: within}
	ws, resp, err := d.Dial(wu.String(), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		s.t.Fatalf("dial: %v (%d)", err, status)
	}
	c := &socket{t: s.t, name: u.name, ws: ws, frames: make(chan frame, 4096), err: make(chan error, 1)}
	go func() {
		defer close(c.frames)
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				c.err <- err
				return
			}
			var f frame
			if err := json.Unmarshal(b, &f); err != nil {
				c.err <- fmt.Errorf("undecodable frame %q: %w", b, err)
				return
			}
			c.frames <- f
		}
	}()
	s.t.Cleanup(func() { ws.Close() })
	return c
}

func (c *socket) send(v any) {
	c.t.Helper()
	if err := c.write(v); err != nil {
		c.t.Fatal(err)
	}
}

// write is send for goroutines other than the test's.
func (c *socket) write(v any) error {
	b, _ := json.Marshal(v)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(within))
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		return fmt.Errorf("%s: write: %w", c.name, err)
	}
	return nil
}

// next returns the next frame, failing the test after within.
func (c *socket) next(what string) frame {
	c.t.Helper()
	f, err := c.read(what)
	if err != nil {
		c.t.Fatal(err)
	}
	return f
}

// read is next for goroutines other than the test's.
func (c *socket) read(what string) (frame, error) {
	select {
	case f, ok := <-c.frames:
		if !ok {
			return f, fmt.Errorf("%s: connection ended waiting for %s: %v", c.name, what, <-c.err)
		}
		return f, nil
	case <-time.After(within):
		return frame{}, fmt.Errorf("%s: no frame within %v waiting for %s", c.name, within, what)
	}
}

// sync sends a sync and returns the events before its synced answer and
// the heads; any other frame before it fails the test.
func (c *socket) sync(id string, cursors map[string]int64) ([]frame, map[string]int64) {
	c.t.Helper()
	c.send(map[string]any{"type": "sync", "id": id, "cursors": cursors})
	var got []frame
	for {
		f := c.next("synced " + id)
		switch {
		case f.Type == "synced" && f.ID == id:
			return got, f.Heads
		case f.Type == "event":
			got = append(got, f)
		default:
			c.t.Fatalf("%s: during sync %s: unexpected frame %+v", c.name, id, f)
		}
	}
}

// sendWS sends a message on the socket, again with the same id while it is
// answered unavailable or rate_limited, and returns its ack. Frames other
// than its answer that arrive meanwhile are returned too.
func (c *socket) sendWS(conv, id, text string) (ack frame, others []frame) {
	c.t.Helper()
	deadline := time.Now().Add(retryFor)
	c.send(map[string]any{"type": "send", "id": id, "conv": conv, "body": map[string]string{"text": text}})
	for {
		f := c.next("ack " + id)
		switch {
		case f.Type == "ack" && f.ID == id:
			return f, others
		case f.Type == "error" && f.ID == id && (f.Code == "unavailable" || f.Code == "rate_limited") && time.Now().Before(deadline):
			retries.Add(1)
			time.Sleep(100 * time.Millisecond)
			c.send(map[string]any{"type": "send", "id": id, "conv": conv, "body": map[string]string{"text": text}})
		case f.Type == "error" && f.ID == id:
			c.t.Fatalf("%s: send %s: %+v", c.name, id, f)
		default:
			others = append(others, f)
		}
	}
}
