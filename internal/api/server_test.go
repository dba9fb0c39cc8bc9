package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/internal/wiring"
)

const serverKey = "server-key-for-tests-0123456789"

// serverEnv is a system with server keys on: api, sequencer, projector and
// an edge in one process, and a second edge in another.
type serverEnv struct {
	*env
	edges []string // addresses serving /v1/ws
}

func startServer(t *testing.T, change func(*config.Config)) *serverEnv {
	t.Helper()
	cfg := testenv.Config(t)
	cfg.ServerKeys = "other-key-not-used, " + serverKey
	if change != nil {
		change(&cfg)
	}
	a, err := wiring.Start(context.Background(), cfg, testenv.Logger(t), wiring.AllRoles...)
	if err != nil {
		t.Fatalf("start system: %v", err)
	}
	t.Cleanup(func() { _ = a.Stop() })
	ecfg := cfg
	ecfg.InstanceID = ""
	b, err := wiring.Start(context.Background(), ecfg, testenv.Logger(t), wiring.Edge)
	if err != nil {
		t.Fatalf("start edge: %v", err)
	}
	t.Cleanup(func() { _ = b.Stop() })
	e := &env{base: "http://" + a.Addr, pool: a.Pool, cfg: cfg, client: &http.Client{Timeout: 30 * time.Second}}
	return &serverEnv{env: e, edges: []string{a.Addr, b.Addr}}
}

// wsClient collects the push frames one connection receives.
type wsClient struct {
	ws    *websocket.Conn
	mu    sync.Mutex
	push  map[string]int // push id to how many times it arrived
	datas map[string]json.RawMessage
	ready chan struct{}
}

func dialWS(t *testing.T, addr, token string) *wsClient {
	t.Helper()
	u := url.URL{Scheme: "ws", Host: addr, Path: "/v1/ws", RawQuery: "token=" + url.QueryEscape(token)}
	ws, _, err := websocket.DefaultDialer.Dial(u.String(), nil)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { ws.Close() })
	c := &wsClient{ws: ws, push: map[string]int{}, datas: map[string]json.RawMessage{}, ready: make(chan struct{})}
	go func() {
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var f struct {
				Type string          `json:"type"`
				ID   string          `json:"id"`
				Data json.RawMessage `json:"data"`
			}
			_ = json.Unmarshal(b, &f)
			switch f.Type {
			case "push":
				c.mu.Lock()
				c.push[f.ID]++
				c.datas[f.ID] = f.Data
				c.mu.Unlock()
			case "pong":
				select {
				case <-c.ready:
				default:
					close(c.ready)
				}
			}
		}
	}()
	// A pong means the connection is registered and served.
	_ = ws.WriteJSON(map[string]string{"type": "ping", "id": "p"})
	select {
	case <-c.ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("no pong from %s", addr)
	}
	return c
}

func (c *wsClient) count(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.push[id]
}

func (e *env) server(t *testing.T, path string, body any) resp {
	t.Helper()
	return e.do(t, "POST", path, serverKey, body)
}

func TestServerKeys(t *testing.T) {
	s := startServer(t, nil)
	alice := s.register(t, "alice")

	// A user token is not a server key, nor anything else but the keys.
	for _, tok := range []string{"", alice.Token, serverKey + "x", "other-key-not-used,"} {
		s.do(t, "POST", "/v1/server/sessions", tok, map[string]string{"username": "bob"}).fails(t, http.StatusUnauthorized, "unauthorized")
	}
	// A server key is no user token: on user routes and on the socket.
	s.do(t, "GET", "/v1/me", serverKey, nil).fails(t, http.StatusUnauthorized, "unauthorized")
	s.do(t, "GET", "/v1/conversations", "other-key-not-used", nil).fails(t, http.StatusUnauthorized, "unauthorized")
	u := url.URL{Scheme: "ws", Host: s.edges[0], Path: "/v1/ws", RawQuery: "token=" + serverKey}
	if _, res, err := websocket.DefaultDialer.Dial(u.String(), nil); err == nil || res == nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("socket with a server key: %v %v", err, res)
	}
	s.do(t, "GET", "/v1/me", alice.Token, nil).ok(t, http.StatusOK, nil)
	// Unknown server paths answer in the error shape, after the key check.
	s.server(t, "/v1/server/nothing", map[string]string{}).fails(t, http.StatusNotFound, "not_found")

	// Off without keys.
	off := startWith(t, func(*config.Config) {})
	off.do(t, "POST", "/v1/server/sessions", serverKey, map[string]string{"username": "bob"}).fails(t, http.StatusNotFound, "not_found")
}

func TestServerSessions(t *testing.T) {
	s := startServer(t, nil)
	var first, again struct {
		Token     string `json:"token"`
		UserID    string `json:"user_id"`
		ExpiresAt string `json:"expires_at"`
	}
	r := s.server(t, "/v1/server/sessions", map[string]string{"username": "carol", "device": "phone"})
	r.ok(t, http.StatusOK, &first)
	keys(t, r.body, "token", "user_id", "expires_at")
	if _, err := time.Parse(time.RFC3339, first.ExpiresAt); err != nil || first.Token == "" || first.UserID == "" {
		t.Fatalf("session %s", r.body)
	}
	s.server(t, "/v1/server/sessions", map[string]string{"username": "carol"}).ok(t, http.StatusOK, &again)
	if again.UserID != first.UserID || again.Token == first.Token {
		t.Fatalf("second sign-in: %+v after %+v", again, first)
	}
	var me struct{ ID, Username string }
	s.do(t, "GET", "/v1/me", first.Token, nil).ok(t, http.StatusOK, &me)
	if me.ID != first.UserID || me.Username != "carol" {
		t.Fatalf("me %+v", me)
	}
	if n := s.count(t, "users"); n != 1 {
		t.Fatalf("%d users, want 1", n)
	}
	// No password logs in as a password-less user, not even an empty one.
	for _, pw := range []string{"", "password-carol", "x"} {
		s.do(t, "POST", "/v1/sessions", "", map[string]string{"username": "carol", "password": pw}).fails(t, http.StatusUnauthorized, "unauthorized")
	}
	// The username is taken for sign-ups.
	s.do(t, "POST", "/v1/users", "", map[string]string{"username": "carol", "password": "password-carol"}).fails(t, http.StatusConflict, "conflict")
	// An existing user with a password gets a session too.
	dave := s.register(t, "dave")
	var ds struct {
		UserID string `json:"user_id"`
	}
	s.server(t, "/v1/server/sessions", map[string]string{"username": "dave"}).ok(t, http.StatusOK, &ds)
	if ds.UserID != dave.ID {
		t.Fatalf("dave's session is for %s", ds.UserID)
	}
	for _, body := range []any{map[string]string{"username": "A B"}, map[string]string{}, "[]", "{"} {
		s.server(t, "/v1/server/sessions", body).fails(t, http.StatusBadRequest, "bad_request")
	}
	// Many first sign-ins at once create one user.
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var v struct {
				UserID string `json:"user_id"`
			}
			s.server(t, "/v1/server/sessions", map[string]string{"username": "erin"}).ok(t, http.StatusOK, &v)
			ids[i] = v.UserID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("racing sign-ins gave users %v", ids)
		}
	}
}

func TestServerSend(t *testing.T) {
	s := startServer(t, nil)
	alice, bob, eve := s.register(t, "alice"), s.register(t, "bob"), s.register(t, "eve")
	c := s.createConv(t, alice, "group", "g", bob.ID)
	path := "/v1/server/conversations/" + c.ID + "/messages"

	var first, again sent
	r := s.server(t, path, map[string]any{"id": "m1", "from": bob.ID, "body": map[string]string{"text": "hi"}})
	r.ok(t, http.StatusOK, &first)
	keys(t, r.body, "seq", "ts")
	// Idempotent by (from, id): the same seq, one event.
	s.server(t, path, map[string]any{"id": "m1", "from": bob.ID, "body": map[string]string{"text": "hi"}}).ok(t, http.StatusOK, &again)
	if again.Seq != first.Seq || first.Seq < 1 {
		t.Fatalf("resend seq %d, first %d", again.Seq, first.Seq)
	}
	// The same id from another sender is another message; by username too.
	var other sent
	s.server(t, path, map[string]any{"id": "m1", "from": "alice", "body": "x"}).ok(t, http.StatusOK, &other)
	if other.Seq != first.Seq+1 {
		t.Fatalf("alice's m1 at %d after %d", other.Seq, first.Seq)
	}
	p := s.page(t, alice, c.ID, "")
	if got := p.seqs(); len(got) == 0 || got[len(got)-1] != other.Seq {
		t.Fatalf("history %v", got)
	}
	for _, ev := range p.Events {
		if ev.Seq == first.Seq && (ev.From != bob.ID || ev.Kind != "message") {
			t.Fatalf("event %+v", ev)
		}
	}
	// Non-members and unknown users are refused, and nothing is appended.
	s.server(t, path, map[string]any{"id": "m2", "from": eve.ID, "body": "x"}).fails(t, http.StatusForbidden, "forbidden")
	s.server(t, path, map[string]any{"id": "m2", "from": "nobody-at-all", "body": "x"}).fails(t, http.StatusForbidden, "forbidden")
	s.server(t, "/v1/server/conversations/nope/messages", map[string]any{"id": "m2", "from": bob.ID, "body": "x"}).fails(t, http.StatusNotFound, "not_found")
	s.server(t, path, map[string]any{"id": "m2", "body": "x"}).fails(t, http.StatusBadRequest, "bad_request")
	s.server(t, path, map[string]any{"id": "bad id", "from": bob.ID, "body": "x"}).fails(t, http.StatusBadRequest, "bad_request")
	s.server(t, path, map[string]any{"id": "m3", "from": bob.ID, "body": string(make([]byte, 17<<10))}).fails(t, http.StatusRequestEntityTooLarge, "too_large")
	if h := s.head(t, alice, c.ID); h != other.Seq {
		t.Fatalf("head %d after refusals, want %d", h, other.Seq)
	}
	// A user token cannot send as someone else here.
	s.do(t, "POST", path, alice.Token, map[string]any{"id": "m4", "from": bob.ID, "body": "x"}).fails(t, http.StatusUnauthorized, "unauthorized")
}

func TestServerRateLimit(t *testing.T) {
	s := startServer(t, func(c *config.Config) { c.RateLimits = true; c.ServerRate = 3 })
	var limitedOnce bool
	for i := 0; i < 10 && !limitedOnce; i++ {
		r := s.server(t, "/v1/server/sessions", map[string]string{"username": "frank"})
		if r.status == http.StatusTooManyRequests {
			limited(t, r)
			limitedOnce = true
		}
	}
	if !limitedOnce {
		t.Fatal("10 calls at once with a rate of 3/s were all let through")
	}
}

func TestServerPush(t *testing.T) {
	s := startServer(t, nil)
	alice, bob, carol := s.register(t, "alice"), s.register(t, "bob"), s.register(t, "carol")
	c := s.createConv(t, alice, "group", "g", bob.ID)
	// alice on both edges, bob on the second, carol on the first.
	a1, a2 := dialWS(t, s.edges[0], alice.Token), dialWS(t, s.edges[1], alice.Token)
	b2, c1 := dialWS(t, s.edges[1], bob.Token), dialWS(t, s.edges[0], carol.Token)
	all := []*wsClient{a1, a2, b2, c1}

	pushOK := func(body map[string]any) {
		t.Helper()
		r := s.server(t, "/v1/server/push", body)
		r.ok(t, http.StatusAccepted, nil)
		keys(t, r.body, "id")
	}
	// exactly waits until the clients in want have the push once, then
	// checks (after a ping round trip on each) that nobody has it twice
	// and the others not at all.
	exactly := func(id string, want ...*wsClient) {
		t.Helper()
		testenv.Eventually(t, 30*time.Second, "push "+id, func() bool {
			for _, w := range want {
				if w.count(id) < 1 {
					return false
				}
			}
			return true
		})
		time.Sleep(200 * time.Millisecond) // anything duplicated or misrouted would be in flight
		for _, cl := range all {
			n := 0
			for _, w := range want {
				if w == cl {
					n = 1
				}
			}
			if got := cl.count(id); got != n {
				t.Fatalf("push %s arrived %d times on a connection, want %d", id, got, n)
			}
		}
	}
	pushOK(map[string]any{"id": "p-all", "data": map[string]any{"n": 1}, "all": true})
	exactly("p-all", all...)
	if d := string(a2.datas["p-all"]); d != `{"n":1}` {
		t.Fatalf("data %s", d)
	}
	pushOK(map[string]any{"id": "p-users", "data": "hello", "users": []string{alice.ID, "someone-offline"}})
	exactly("p-users", a1, a2)
	pushOK(map[string]any{"id": "p-conv", "data": []int{1, 2}, "conv": c.ID})
	exactly("p-conv", a1, a2, b2)
	// The same id again within the window is not delivered again.
	pushOK(map[string]any{"id": "p-all", "data": 2, "all": true})
	pushOK(map[string]any{"id": "p-users", "data": 2, "users": []string{carol.ID}})
	pushOK(map[string]any{"id": "marker", "data": 0, "all": true})
	exactly("marker", all...)
	exactly("p-all", all...)
	exactly("p-users", a1, a2)

	for _, body := range []map[string]any{
		{"id": "x", "data": 1},
		{"id": "x", "data": 1, "all": true, "conv": c.ID},
		{"id": "x", "users": []string{alice.ID}},
		{"id": "bad id", "data": 1, "all": true},
		{"id": "x", "data": 1, "users": []string{}},
		{"id": "x", "data": 1, "users": []string{"a b"}},
	} {
		s.server(t, "/v1/server/push", body).fails(t, http.StatusBadRequest, "bad_request")
	}
	s.server(t, "/v1/server/push", map[string]any{"id": "x", "data": string(make([]byte, 17<<10)), "all": true}).fails(t, http.StatusRequestEntityTooLarge, "too_large")
	s.server(t, "/v1/server/push", map[string]any{"id": "x", "data": 1, "conv": "nope"}).fails(t, http.StatusNotFound, "not_found")
	many := make([]string, 10001)
	for i := range many {
		many[i] = fmt.Sprint("u", i)
	}
	s.server(t, "/v1/server/push", map[string]any{"id": "x", "data": 1, "users": many}).fails(t, http.StatusBadRequest, "bad_request")
}
