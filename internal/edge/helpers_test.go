package edge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/internal/wiring"
)

// system is a running chat system with two edges: the first process runs
// every role, the second only an edge.
type system struct {
	t          *testing.T
	cfg        config.Config
	main, edge *wiring.System
}

func start(t *testing.T) *system { t.Helper(); return startWith(t, nil) }

// startWith starts a system whose configuration change adjusts first.
func startWith(t *testing.T, change func(*config.Config)) *system {
	t.Helper()
	cfg := testenv.Config(t)
	if change != nil {
		change(&cfg)
	}
	// Under TestOneProcess the first process runs its own embedded
	// JetStream (the one-process mode: fanout, history and unread take the
	// sequencer's events in memory) and the second edge connects to it.
	oneProcess := strings.HasPrefix(t.Name(), "TestOneProcess/")
	if oneProcess {
		cfg.NATSURL = ""
	}
	log := testenv.Logger(t)
	ctx := context.Background()
	cfg.InstanceID = "e1"
	main, err := wiring.Start(ctx, cfg, log, wiring.API, wiring.Sequencer, wiring.Projector, wiring.Edge)
	if err != nil {
		t.Fatalf("start main: %v", err)
	}
	t.Cleanup(func() { _ = main.Stop() })
	if oneProcess {
		if !cfg.Pipelined() || main.NATS.Server == nil {
			t.Fatal("the first process should run the one-process mode")
		}
		// Every other process a test starts connects to it.
		cfg.NATSURL = main.NATS.Server.ClientURL()
	}
	cfg2 := cfg
	cfg2.InstanceID, cfg2.HTTPAddr = "e2", "127.0.0.1:0"
	edge, err := wiring.Start(ctx, cfg2, log, wiring.Edge)
	if err != nil {
		t.Fatalf("start edge: %v", err)
	}
	t.Cleanup(func() { _ = edge.Stop() })
	return &system{t: t, cfg: cfg, main: main, edge: edge}
}

// do calls the REST api and decodes the answer into out (if not nil).
func (s *system) do(method, path, token string, in, out any) int {
	s.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+s.main.Addr+path, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	if resp.StatusCode >= 300 {
		s.t.Logf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

type user struct {
	id, token string
}

func (s *system) user(name string) user {
	s.t.Helper()
	if code := s.do("POST", "/v1/users", "", map[string]string{"username": name, "password": "password1"}, nil); code != 201 {
		s.t.Fatalf("register %s: %d", name, code)
	}
	var r struct {
		Token  string `json:"token"`
		UserID string `json:"user_id"`
	}
	if code := s.do("POST", "/v1/sessions", "", map[string]string{"username": name, "password": "password1"}, &r); code != 200 {
		s.t.Fatalf("login %s: %d", name, code)
	}
	return user{id: r.UserID, token: r.Token}
}

func (s *system) direct(a, b user) string {
	s.t.Helper()
	var r struct{ ID string }
	if code := s.do("POST", "/v1/conversations", a.token, map[string]any{"kind": "direct", "members": []string{b.id}}, &r); code >= 300 {
		s.t.Fatalf("create conversation: %d", code)
	}
	return r.ID
}

// group creates a group of a with members.
func (s *system) group(a user, members ...user) string {
	s.t.Helper()
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.id
	}
	var r struct{ ID string }
	if code := s.do("POST", "/v1/conversations", a.token, map[string]any{"kind": "group", "title": "g", "members": ids}, &r); code >= 300 {
		s.t.Fatalf("create group: %d", code)
	}
	return r.ID
}

type event struct {
	Seq  int64  `json:"seq"`
	ID   string `json:"id"`
	From string `json:"from"`
	Kind string `json:"kind"`
}

// history returns conv's events over REST (at most 200 after seq after).
func (s *system) history(u user, conv string, after int64) (list []event, head int64) {
	s.t.Helper()
	var r struct {
		Events []event `json:"events"`
		Head   int64   `json:"head"`
	}
	if code := s.do("GET", fmt.Sprintf("/v1/conversations/%s/messages?after_seq=%d&limit=200", conv, after), u.token, nil, &r); code != 200 {
		s.t.Fatalf("history: %d", code)
	}
	return r.Events, r.Head
}

// allHistory pages through conv's whole history.
func (s *system) allHistory(u user, conv string) []event {
	var all []event
	for {
		page, head := s.history(u, conv, int64(len(all)))
		all = append(all, page...)
		if len(page) == 0 || int64(len(all)) >= head {
			return all
		}
	}
}

// frame is any server frame.
type frame struct {
	Type    string           `json:"type"`
	ID      string           `json:"id"`
	Conv    string           `json:"conv"`
	Seq     int64            `json:"seq"`
	TS      int64            `json:"ts"`
	Kind    string           `json:"kind"`
	From    string           `json:"from"`
	Code    string           `json:"code"`
	Message string           `json:"message"`
	Heads   map[string]int64 `json:"heads"`
	Body    json.RawMessage  `json:"body"`
	// Richer messages and typing.
	Target int64  `json:"target"`
	Emoji  string `json:"emoji"`
	On     *bool  `json:"on"`
	User   string `json:"user"`
}

// client is a test's WebSocket connection; a goroutine reads its frames.
type client struct {
	t      *testing.T
	ws     *websocket.Conn
	frames chan frame
	err    chan error // why reading stopped
}

func dial(t *testing.T, addr, token string) *client {
	t.Helper()
	u := url.URL{Scheme: "ws", Host: addr, Path: "/v1/ws", RawQuery: "token=" + url.QueryEscape(token)}
	ws, resp, err := websocket.DefaultDialer.Dial(u.String(), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", addr, err, status)
	}
	c := &client{t: t, ws: ws, frames: make(chan frame, 10000), err: make(chan error, 1)}
	go func() {
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				c.err <- err
				close(c.frames)
				return
			}
			var f frame
			if err := json.Unmarshal(b, &f); err != nil {
				c.err <- fmt.Errorf("undecodable frame %q: %w", b, err)
				close(c.frames)
				return
			}
			c.frames <- f
		}
	}()
	t.Cleanup(func() { ws.Close() })
	return c
}

func (c *client) send(v any) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	c.raw(b)
}

func (c *client) raw(b []byte) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next returns the next frame, failing the test after d.
func (c *client) next(d time.Duration) frame {
	c.t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			c.t.Fatalf("connection ended: %v", <-c.err)
		}
		return f
	case <-time.After(d):
		c.t.Fatalf("no frame within %v", d)
	}
	return frame{}
}

// sync syncs cursors and returns the replayed events and the heads.
func (c *client) sync(cursors map[string]int64) ([]frame, map[string]int64) {
	c.t.Helper()
	c.send(map[string]any{"type": "sync", "id": "s1", "cursors": cursors})
	var got []frame
	for {
		f := c.next(30 * time.Second)
		switch f.Type {
		case "synced":
			return got, f.Heads
		case "event":
			got = append(got, f)
		default:
			c.t.Fatalf("during sync: unexpected frame %+v", f)
		}
	}
}

// events reads n event frames of conv, skipping nothing: any other frame
// fails the test.
func (c *client) events(n int) []frame {
	c.t.Helper()
	out := make([]frame, 0, n)
	for len(out) < n {
		f := c.next(30 * time.Second)
		if f.Type != "event" {
			c.t.Fatalf("after %d events: unexpected frame %+v", len(out), f)
		}
		out = append(out, f)
	}
	return out
}

// ping sends a ping and waits for its pong, returning the frames before it.
func (c *client) ping(id string) []frame {
	c.t.Helper()
	c.send(map[string]string{"type": "ping", "id": id})
	var before []frame
	for {
		f := c.next(15 * time.Second)
		if f.Type == "pong" && f.ID == id {
			return before
		}
		before = append(before, f)
	}
}

func sendFrame(id, conv string, i int) map[string]any {
	return map[string]any{"type": "send", "id": id, "conv": conv, "body": map[string]any{"text": "hi", "n": i}}
}

// checkSeqs checks that frames carry seqs first, first+1, … with the ids
// msgID(seq).
func checkSeqs(t *testing.T, who string, got []frame, first int64, id func(seq int64) string) {
	t.Helper()
	for i, f := range got {
		want := first + int64(i)
		if f.Seq != want {
			t.Fatalf("%s: frame %d has seq %d, want %d", who, i, f.Seq, want)
		}
		if id != nil && f.ID != id(want) {
			t.Fatalf("%s: seq %d has id %s, want %s", who, want, f.ID, id(want))
		}
	}
}
