package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seqchat/seqchat/internal/auth"
	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/internal/wiring"
)

// ---------------------------------------------------------------------------
// Harness

// env is one running system (api, sequencer, projector) for a top-level test.
type env struct {
	base   string
	pool   *pgxpool.Pool
	cfg    config.Config
	client *http.Client
}

func start(t *testing.T) *env {
	t.Helper()
	a, cfg, err := startSystem(t, testenv.Config(t), wiring.API, wiring.Sequencer, wiring.Projector)
	if err != nil {
		t.Fatalf("start system: %v", err)
	}
	// Registered after testenv's own cleanups, so it runs before them (LIFO):
	// the app stops while its NATS server and database still exist, and
	// nothing logs through t after the test ends.
	t.Cleanup(func() {
		if err := a.Stop(); err != nil {
			t.Errorf("stop system: %v", err)
		}
	})
	return &env{base: "http://" + a.Addr, pool: a.Pool, cfg: cfg, client: &http.Client{Timeout: 30 * time.Second}}
}

// startSystem starts roles on cfg, and returns the configuration for any
// other process a test starts beside them. Under TestOneProcess the system
// runs the one-process mode (its own embedded JetStream: the history and
// unread projections take the sequencer's events in memory) and the
// configuration returned connects to that server.
func startSystem(t *testing.T, cfg config.Config, roles ...wiring.Role) (*wiring.System, config.Config, error) {
	t.Helper()
	oneProcess := strings.HasPrefix(t.Name(), "TestOneProcess/")
	if oneProcess {
		cfg.NATSURL = ""
	}
	a, err := wiring.Start(context.Background(), cfg, testenv.Logger(t), roles...)
	if err != nil {
		return nil, cfg, err
	}
	if oneProcess {
		if !cfg.Pipelined() || a.NATS.Server == nil {
			_ = a.Stop()
			t.Fatal("the system should run the one-process mode")
		}
		cfg.NATSURL = a.NATS.Server.ClientURL()
	}
	return a, cfg, nil
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request. body is nil (no body), a string or []byte (sent
// verbatim) or anything else (sent as JSON).
func (e *env) do(t *testing.T, method, path, token string, body any) resp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("marshal request: %v", err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// ok asserts the status and decodes the JSON answer into v (if not nil).
func (r resp) ok(t *testing.T, status int, v any) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if status == http.StatusNoContent {
		if len(r.body) != 0 {
			t.Fatalf("204 with a body: %s", r.body)
		}
		return
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	if v != nil {
		if err := json.Unmarshal(r.body, v); err != nil {
			t.Fatalf("decode %s: %v", r.body, err)
		}
	}
}

// fails asserts the protocol's error shape with the given status and code.
func (r resp) fails(t *testing.T, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error Content-Type %q, want application/json; body %s", ct, r.body)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &top); err != nil {
		t.Fatalf("error body is not a JSON object: %s", r.body)
	}
	if len(top) != 1 || top["error"] == nil {
		t.Fatalf("error body must be exactly {\"error\":{...}}: %s", r.body)
	}
	var inner map[string]any
	if err := json.Unmarshal(top["error"], &inner); err != nil {
		t.Fatalf("error is not an object: %s", r.body)
	}
	if len(inner) != 2 {
		t.Fatalf("error must hold exactly code and message: %s", r.body)
	}
	if got, _ := inner["code"].(string); got != code {
		t.Fatalf("error code %q, want %q; body %s", inner["code"], code, r.body)
	}
	if msg, _ := inner["message"].(string); msg == "" {
		t.Fatalf("error message missing: %s", r.body)
	}
}

// keys asserts that the JSON object in b has exactly the given keys.
func keys(t *testing.T, b []byte, want ...string) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %s", b)
	}
	var got []string
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("keys %v, want %v in %s", got, want, b)
	}
}

type user struct {
	ID, Name, Token string
}

func (e *env) register(t *testing.T, name string) user {
	t.Helper()
	var u struct{ ID, Username string }
	e.do(t, "POST", "/v1/users", "", map[string]string{"username": name, "password": "password-" + name}).ok(t, http.StatusCreated, &u)
	if u.ID == "" || u.Username != name {
		t.Fatalf("register %s: got %+v", name, u)
	}
	return user{ID: u.ID, Name: name, Token: e.login(t, name)}
}

func (e *env) login(t *testing.T, name string) string {
	t.Helper()
	var s struct {
		Token string `json:"token"`
	}
	e.do(t, "POST", "/v1/sessions", "", map[string]string{"username": name, "password": "password-" + name}).ok(t, http.StatusOK, &s)
	if s.Token == "" {
		t.Fatalf("login %s: no token", name)
	}
	return s.Token
}

type convJSON struct {
	ID      string   `json:"id"`
	Kind    string   `json:"kind"`
	Title   *string  `json:"title"`
	Members []string `json:"members"`
	LastSeq *int64   `json:"last_seq"`
	ReadSeq *int64   `json:"read_seq"`
	Unread  *int64   `json:"unread"`
}

func (e *env) createConv(t *testing.T, u user, kind, title string, members ...string) convJSON {
	t.Helper()
	if members == nil {
		members = []string{}
	}
	var c convJSON
	e.do(t, "POST", "/v1/conversations", u.Token, map[string]any{"kind": kind, "title": title, "members": members}).ok(t, http.StatusCreated, &c)
	if c.ID == "" {
		t.Fatalf("create conversation: no id")
	}
	return c
}

func (e *env) convs(t *testing.T, u user) map[string]convJSON {
	t.Helper()
	var l struct {
		Conversations []convJSON `json:"conversations"`
	}
	r := e.do(t, "GET", "/v1/conversations", u.Token, nil)
	r.ok(t, http.StatusOK, &l)
	if l.Conversations == nil {
		t.Fatalf("conversations must be a list: %s", r.body)
	}
	out := map[string]convJSON{}
	for _, c := range l.Conversations {
		if c.Title == nil || c.LastSeq == nil || c.ReadSeq == nil || c.Unread == nil {
			t.Fatalf("conversation lacks fields: %s", r.body)
		}
		out[c.ID] = c
	}
	return out
}

type sent struct {
	Seq int64 `json:"seq"`
	TS  int64 `json:"ts"`
}

func (e *env) send(t *testing.T, u user, conv, id string, body any) sent {
	t.Helper()
	var s sent
	r := e.do(t, "POST", "/v1/conversations/"+conv+"/messages", u.Token, map[string]any{"id": id, "body": body})
	r.ok(t, http.StatusOK, &s)
	keys(t, r.body, "seq", "ts")
	if s.Seq < 1 || s.TS <= 0 {
		t.Fatalf("send: bad answer %s", r.body)
	}
	return s
}

type event struct {
	Conv     string          `json:"conv"`
	Seq      int64           `json:"seq"`
	Kind     string          `json:"kind"`
	ID       string          `json:"id"`
	From     string          `json:"from"`
	TS       int64           `json:"ts"`
	Body     json.RawMessage `json:"body"`
	User     string          `json:"user"`
	Recalled bool            `json:"recalled"`
}

type page struct {
	Events  []event `json:"events"`
	Head    *int64  `json:"head"`
	HasMore *bool   `json:"has_more"`
}

func (p page) seqs() []int64 {
	s := make([]int64, len(p.Events))
	for i, e := range p.Events {
		s[i] = e.Seq
	}
	return s
}

func (e *env) page(t *testing.T, u user, conv, query string) page {
	t.Helper()
	var p page
	r := e.do(t, "GET", "/v1/conversations/"+conv+"/messages"+query, u.Token, nil)
	r.ok(t, http.StatusOK, &p)
	if p.Events == nil || p.Head == nil || p.HasMore == nil {
		t.Fatalf("page lacks events, head or has_more: %s", r.body)
	}
	for i := 1; i < len(p.Events); i++ {
		if p.Events[i].Seq != p.Events[i-1].Seq+1 {
			t.Fatalf("page not ascending and gap-free: %v", p.seqs())
		}
	}
	return p
}

func (e *env) head(t *testing.T, u user, conv string) int64 {
	t.Helper()
	return *e.page(t, u, conv, "?limit=1").Head
}

func (e *env) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func (e *env) unread(t *testing.T, u user) (int64, map[string]int64) {
	t.Helper()
	var un struct {
		Total         *int64           `json:"total"`
		Conversations map[string]int64 `json:"conversations"`
	}
	r := e.do(t, "GET", "/v1/unread", u.Token, nil)
	r.ok(t, http.StatusOK, &un)
	keys(t, r.body, "total", "conversations", "mentions")
	if un.Total == nil || un.Conversations == nil {
		t.Fatalf("unread lacks total or conversations: %s", r.body)
	}
	return *un.Total, un.Conversations
}

// tamper changes one character well inside the token's signature.
func tamper(tok string) string {
	i := len(tok) - 10
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}

func seqRange(from, to int64) []int64 {
	var s []int64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

const wait = 30 * time.Second // for what must happen soon: generous, for a loaded machine

// ---------------------------------------------------------------------------
// Accounts and sessions

func TestAccounts(t *testing.T) {
	t.Parallel()
	e := start(t)

	var alice struct{ ID, Username string }
	t.Run("register", func(t *testing.T) {
		r := e.do(t, "POST", "/v1/users", "", map[string]string{"username": "alice", "password": "password-alice"})
		r.ok(t, http.StatusCreated, &alice)
		keys(t, r.body, "id", "username")
		if alice.ID == "" || alice.Username != "alice" {
			t.Fatalf("got %s", r.body)
		}
	})

	t.Run("register boundaries accepted", func(t *testing.T) {
		for _, name := range []string{"abc", strings.Repeat("z", 32), "a_b.c-d", "0123"} {
			e.do(t, "POST", "/v1/users", "", map[string]string{"username": name, "password": "12345678"}).ok(t, http.StatusCreated, nil)
		}
	})

	t.Run("register refused", func(t *testing.T) {
		cases := []struct {
			name   string
			body   any
			status int
			code   string
		}{
			{"taken", map[string]string{"username": "alice", "password": "another-password"}, 409, "conflict"},
			{"too short", map[string]string{"username": "ab", "password": "password1"}, 400, "bad_request"},
			{"empty", map[string]string{"username": "", "password": "password1"}, 400, "bad_request"},
			{"too long", map[string]string{"username": strings.Repeat("a", 33), "password": "password1"}, 400, "bad_request"},
			{"uppercase", map[string]string{"username": "Alice2", "password": "password1"}, 400, "bad_request"},
			{"space", map[string]string{"username": "bob smith", "password": "password1"}, 400, "bad_request"},
			{"trailing newline", map[string]string{"username": "bobby\n", "password": "password1"}, 400, "bad_request"},
			{"sql metacharacters", map[string]string{"username": "a';drop--", "password": "password1"}, 400, "bad_request"},
			{"non-ascii", map[string]string{"username": "zoë", "password": "password1"}, 400, "bad_request"},
			{"short password", map[string]string{"username": "bobby", "password": "1234567"}, 400, "bad_request"},
			{"no password", map[string]string{"username": "bobby"}, 400, "bad_request"},
			{"malformed JSON", `{"username":"bobby","password":`, 400, "bad_request"},
			{"array body", `["bobby","password1"]`, 400, "bad_request"},
			{"string body", `"bobby"`, 400, "bad_request"},
			{"empty body", "", 400, "bad_request"},
			{"wrong types", `{"username":5,"password":true}`, 400, "bad_request"},
		}
		before := e.count(t, "users")
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				e.do(t, "POST", "/v1/users", "", c.body).fails(t, c.status, c.code)
			})
		}
		if after := e.count(t, "users"); after != before {
			t.Fatalf("refused registrations changed users: %d -> %d", before, after)
		}
	})

	var tok1 string
	t.Run("login", func(t *testing.T) {
		var s struct {
			Token     string `json:"token"`
			UserID    string `json:"user_id"`
			ExpiresAt string `json:"expires_at"`
		}
		r := e.do(t, "POST", "/v1/sessions", "", map[string]string{"username": "alice", "password": "password-alice", "device": "laptop"})
		r.ok(t, http.StatusOK, &s)
		keys(t, r.body, "token", "user_id", "expires_at")
		if s.Token == "" || s.UserID != alice.ID {
			t.Fatalf("got %s", r.body)
		}
		exp, err := time.Parse(time.RFC3339, s.ExpiresAt)
		if err != nil || !exp.After(time.Now()) {
			t.Fatalf("expires_at %q is not a future RFC 3339 time (%v)", s.ExpiresAt, err)
		}
		tok1 = s.Token
	})

	t.Run("login refused", func(t *testing.T) {
		cases := []struct {
			name   string
			body   any
			status int
			code   string
		}{
			{"wrong password", map[string]string{"username": "alice", "password": "password-alicf"}, 401, "unauthorized"},
			{"unknown user", map[string]string{"username": "nobody", "password": "password-alice"}, 401, "unauthorized"},
			{"empty", map[string]string{}, 401, "unauthorized"},
			{"malformed JSON", `{"username":`, 400, "bad_request"},
			{"non-object", `[]`, 400, "bad_request"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				e.do(t, "POST", "/v1/sessions", "", c.body).fails(t, c.status, c.code)
			})
		}
	})

	t.Run("me", func(t *testing.T) {
		var me struct{ ID, Username string }
		r := e.do(t, "GET", "/v1/me", tok1, nil)
		r.ok(t, http.StatusOK, &me)
		keys(t, r.body, "id", "username")
		if me.ID != alice.ID || me.Username != "alice" {
			t.Fatalf("got %s", r.body)
		}
	})

	t.Run("me refused", func(t *testing.T) {
		other, err := auth.NewTokens("another-secret-of-16+bytes", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		foreign, _, err := other.Issue(alice.ID, "s-foreign", "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		own, err := auth.NewTokens(e.cfg.TokenSecret, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		expired, _, err := own.Issue(alice.ID, "s-expired", "", time.Now().Add(-2*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		// Control: the same signer and a fresh time is accepted.
		fresh, _, err := own.Issue(alice.ID, "s-fresh", "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		e.do(t, "GET", "/v1/me", fresh, nil).ok(t, http.StatusOK, nil)

		cases := []struct{ name, header string }{
			{"no token", ""},
			{"garbage token", "Bearer not-a-token"},
			{"empty bearer", "Bearer "},
			{"other key", "Bearer " + foreign},
			{"expired", "Bearer " + expired},
			{"tampered", "Bearer " + tamper(tok1)},
			{"wrong scheme", "Basic " + tok1},
			{"no scheme", tok1},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				req, _ := http.NewRequest("GET", e.base+"/v1/me", nil)
				if c.header != "" {
					req.Header.Set("Authorization", c.header)
				}
				res, err := e.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				b, _ := io.ReadAll(res.Body)
				resp{status: res.StatusCode, header: res.Header, body: b}.fails(t, 401, "unauthorized")
			})
		}
		t.Run("token in query is not for REST", func(t *testing.T) {
			e.do(t, "GET", "/v1/me?token="+tok1, "", nil).fails(t, 401, "unauthorized")
		})
	})

	t.Run("logout", func(t *testing.T) {
		tok2 := e.login(t, "alice")
		e.do(t, "DELETE", "/v1/sessions/current", tok1, nil).ok(t, http.StatusNoContent, nil)
		e.do(t, "GET", "/v1/me", tok1, nil).fails(t, 401, "unauthorized")
		e.do(t, "GET", "/v1/conversations", tok1, nil).fails(t, 401, "unauthorized")
		e.do(t, "DELETE", "/v1/sessions/current", tok1, nil).fails(t, 401, "unauthorized")
		// The user's other session is untouched.
		e.do(t, "GET", "/v1/me", tok2, nil).ok(t, http.StatusOK, nil)
		// And logging in again gives a working token.
		e.do(t, "GET", "/v1/me", e.login(t, "alice"), nil).ok(t, http.StatusOK, nil)
	})

	t.Run("logout without token", func(t *testing.T) {
		e.do(t, "DELETE", "/v1/sessions/current", "", nil).fails(t, 401, "unauthorized")
	})

	t.Run("unknown path", func(t *testing.T) {
		tok := e.login(t, "alice")
		e.do(t, "GET", "/v1/nope", tok, nil).fails(t, 404, "not_found")
		e.do(t, "GET", "/v1/nope", "", nil).fails(t, 404, "not_found")
		e.do(t, "POST", "/v1/conversations/x/nope", tok, "{}").fails(t, 404, "not_found")
	})

	t.Run("every authed endpoint needs a token", func(t *testing.T) {
		for _, ep := range []struct{ method, path string }{
			{"GET", "/v1/me"}, {"DELETE", "/v1/sessions/current"}, {"GET", "/v1/friends"},
			{"PUT", "/v1/friends/alice"}, {"DELETE", "/v1/friends/alice"},
			{"POST", "/v1/conversations"}, {"GET", "/v1/conversations"}, {"GET", "/v1/conversations/c"},
			{"POST", "/v1/conversations/c/members"}, {"DELETE", "/v1/conversations/c/members/u"},
			{"GET", "/v1/conversations/c/messages"}, {"POST", "/v1/conversations/c/messages"},
			{"POST", "/v1/conversations/c/read"}, {"POST", "/v1/conversations/c/recall"}, {"GET", "/v1/unread"},
		} {
			t.Run(ep.method+" "+ep.path, func(t *testing.T) {
				var body any
				if ep.method == "POST" {
					body = "{}"
				}
				e.do(t, ep.method, ep.path, "", body).fails(t, 401, "unauthorized")
			})
		}
	})
}

// ---------------------------------------------------------------------------
// Friends

func TestFriends(t *testing.T) {
	t.Parallel()
	e := start(t)
	a, b, c := e.register(t, "alice"), e.register(t, "bob"), e.register(t, "carol")

	type friendsJSON struct {
		Friends []struct {
			ID       string `json:"id"`
			Username string `json:"username"`
			Online   *bool  `json:"online"`
		} `json:"friends"`
	}
	friends := func(t *testing.T, u user) map[string]string {
		t.Helper()
		var f friendsJSON
		r := e.do(t, "GET", "/v1/friends", u.Token, nil)
		r.ok(t, http.StatusOK, &f)
		if f.Friends == nil {
			t.Fatalf("friends must be a list: %s", r.body)
		}
		out := map[string]string{}
		var raw struct{ Friends []json.RawMessage }
		_ = json.Unmarshal(r.body, &raw)
		for _, fr := range raw.Friends {
			keys(t, fr, "id", "username", "online")
		}
		for _, fr := range f.Friends {
			if fr.Online == nil || *fr.Online {
				t.Fatalf("friend %s: online must be false with nobody connected: %s", fr.Username, r.body)
			}
			out[fr.ID] = fr.Username
		}
		return out
	}

	t.Run("none yet", func(t *testing.T) {
		if f := friends(t, a); len(f) != 0 {
			t.Fatalf("got %v", f)
		}
	})
	t.Run("add by id is mutual", func(t *testing.T) {
		e.do(t, "PUT", "/v1/friends/"+b.ID, a.Token, nil).ok(t, http.StatusNoContent, nil)
		if f := friends(t, a); len(f) != 1 || f[b.ID] != "bob" {
			t.Fatalf("alice's friends %v", f)
		}
		if f := friends(t, b); len(f) != 1 || f[a.ID] != "alice" {
			t.Fatalf("bob's friends %v", f)
		}
	})
	t.Run("add again is idempotent", func(t *testing.T) {
		e.do(t, "PUT", "/v1/friends/"+b.ID, a.Token, nil).ok(t, http.StatusNoContent, nil)
		e.do(t, "PUT", "/v1/friends/"+a.ID, b.Token, nil).ok(t, http.StatusNoContent, nil)
		if f := friends(t, a); len(f) != 1 {
			t.Fatalf("got %v", f)
		}
	})
	t.Run("add by username", func(t *testing.T) {
		e.do(t, "PUT", "/v1/friends/carol", a.Token, nil).ok(t, http.StatusNoContent, nil)
		if f := friends(t, a); len(f) != 2 || f[c.ID] != "carol" {
			t.Fatalf("got %v", f)
		}
		if f := friends(t, c); len(f) != 1 || f[a.ID] != "alice" {
			t.Fatalf("got %v", f)
		}
	})
	t.Run("refused", func(t *testing.T) {
		before := e.count(t, "friends")
		e.do(t, "PUT", "/v1/friends/nobody", a.Token, nil).fails(t, 404, "not_found")
		e.do(t, "PUT", "/v1/friends/01ARZ3NDEKTSV4RRFFQ69G5FAV", a.Token, nil).fails(t, 404, "not_found")
		e.do(t, "PUT", "/v1/friends/"+a.ID, a.Token, nil).fails(t, 400, "bad_request")
		e.do(t, "PUT", "/v1/friends/alice", a.Token, nil).fails(t, 400, "bad_request")
		e.do(t, "DELETE", "/v1/friends/nobody", a.Token, nil).fails(t, 404, "not_found")
		if after := e.count(t, "friends"); after != before {
			t.Fatalf("friends changed: %d -> %d", before, after)
		}
	})
	t.Run("remove", func(t *testing.T) {
		e.do(t, "DELETE", "/v1/friends/"+b.ID, a.Token, nil).ok(t, http.StatusNoContent, nil)
		if f := friends(t, a); len(f) != 1 || f[b.ID] != "" {
			t.Fatalf("alice's friends %v", f)
		}
		if f := friends(t, b); len(f) != 0 {
			t.Fatalf("bob's friends %v", f)
		}
		// Removing again, or by the other side by username, is harmless.
		e.do(t, "DELETE", "/v1/friends/alice", c.Token, nil).ok(t, http.StatusNoContent, nil)
		e.do(t, "DELETE", "/v1/friends/"+b.ID, a.Token, nil).ok(t, http.StatusNoContent, nil)
		if f := friends(t, a); len(f) != 0 {
			t.Fatalf("alice's friends %v", f)
		}
	})
}

// ---------------------------------------------------------------------------
// Conversations

func TestConversations(t *testing.T) {
	t.Parallel()
	e := start(t)
	a, b, c := e.register(t, "alice"), e.register(t, "bob"), e.register(t, "carol")

	var direct convJSON
	t.Run("direct create", func(t *testing.T) {
		r := e.do(t, "POST", "/v1/conversations", a.Token, map[string]any{"kind": "direct", "members": []string{b.ID}})
		r.ok(t, http.StatusCreated, &direct)
		keys(t, r.body, "id", "kind", "title", "members")
		if direct.ID == "" || direct.Kind != "direct" || direct.Title == nil || *direct.Title != "" {
			t.Fatalf("got %s", r.body)
		}
		m := slices.Sorted(slices.Values(direct.Members))
		if want := slices.Sorted(slices.Values([]string{a.ID, b.ID})); !slices.Equal(m, want) {
			t.Fatalf("members %v, want %v", m, want)
		}
	})
	t.Run("direct again answers the same one", func(t *testing.T) {
		for _, q := range []struct {
			u     user
			other string
		}{{a, b.ID}, {b, a.ID}, {a, b.ID}} {
			var again convJSON
			e.do(t, "POST", "/v1/conversations", q.u.Token, map[string]any{"kind": "direct", "members": []string{q.other}}).ok(t, http.StatusOK, &again)
			if again.ID != direct.ID || again.Kind != "direct" {
				t.Fatalf("got %+v, want id %s", again, direct.ID)
			}
		}
		var n int
		if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM conversations WHERE kind='direct'").Scan(&n); err != nil || n != 1 {
			t.Fatalf("%d direct conversations (%v), want 1", n, err)
		}
	})
	t.Run("direct created concurrently is still unique", func(t *testing.T) {
		// Several pairs, each asked for by both sides at once, all released
		// together so that the creations race.
		const pairs, per = 4, 10
		type pair struct{ x, y user }
		ps := make([]pair, pairs)
		for i := range ps {
			ps[i] = pair{e.register(t, fmt.Sprintf("xavier%d", i)), e.register(t, fmt.Sprintf("yvonne%d", i))}
		}
		results := make([][]resp, pairs)
		gate := make(chan struct{})
		var wg sync.WaitGroup
		for p := range pairs {
			results[p] = make([]resp, per)
			for i := range per {
				from, to := ps[p].x, ps[p].y
				if i%2 == 1 {
					from, to = to, from
				}
				body, _ := json.Marshal(map[string]any{"kind": "direct", "members": []string{to.ID}})
				req, _ := http.NewRequest("POST", e.base+"/v1/conversations", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+from.Token)
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-gate
					res, err := e.client.Do(req)
					if err != nil {
						results[p][i] = resp{status: -1, body: []byte(err.Error())}
						return
					}
					defer res.Body.Close()
					b, _ := io.ReadAll(res.Body)
					results[p][i] = resp{status: res.StatusCode, header: res.Header, body: b}
				}()
			}
		}
		close(gate)
		wg.Wait()
		for p := range pairs {
			ids := map[string]bool{}
			created := 0
			for _, r := range results[p] {
				if r.status != 200 && r.status != 201 {
					t.Fatalf("pair %d: status %d: %s", p, r.status, r.body)
				}
				if r.status == 201 {
					created++
				}
				var cv convJSON
				r.ok(t, r.status, &cv)
				ids[cv.ID] = true
			}
			if len(ids) != 1 || created != 1 {
				t.Fatalf("pair %d: %d ids, %d answers 201; want 1 and 1", p, len(ids), created)
			}
		}
	})

	t.Run("create refused", func(t *testing.T) {
		cases := []struct {
			name   string
			body   any
			status int
			code   string
		}{
			{"direct with nobody", map[string]any{"kind": "direct", "members": []string{}}, 400, "bad_request"},
			{"direct without members", map[string]any{"kind": "direct"}, 400, "bad_request"},
			{"direct with self only", map[string]any{"kind": "direct", "members": []string{a.ID}}, 400, "bad_request"},
			{"direct with two others", map[string]any{"kind": "direct", "members": []string{b.ID, c.ID}}, 400, "bad_request"},
			{"direct with unknown", map[string]any{"kind": "direct", "members": []string{"01ARZ3NDEKTSV4RRFFQ69G5FAV"}}, 404, "not_found"},
			{"group with unknown", map[string]any{"kind": "group", "title": "g", "members": []string{b.ID, "nobody"}}, 404, "not_found"},
			{"bad kind", map[string]any{"kind": "channel", "members": []string{b.ID}}, 400, "bad_request"},
			{"no kind", map[string]any{"members": []string{b.ID}}, 400, "bad_request"},
			{"title too long", map[string]any{"kind": "group", "title": strings.Repeat("t", 201)}, 400, "bad_request"},
			{"members not a list", `{"kind":"group","members":"bob"}`, 400, "bad_request"},
			{"malformed JSON", `{"kind":"group",`, 400, "bad_request"},
			{"non-object", `"group"`, 400, "bad_request"},
		}
		convsBefore, membersBefore := e.count(t, "conversations"), e.count(t, "members")
		for _, cs := range cases {
			t.Run(cs.name, func(t *testing.T) {
				e.do(t, "POST", "/v1/conversations", a.Token, cs.body).fails(t, cs.status, cs.code)
			})
		}
		if e.count(t, "conversations") != convsBefore || e.count(t, "members") != membersBefore {
			t.Fatalf("refused creations changed conversations or members")
		}
	})

	var group convJSON
	t.Run("group create", func(t *testing.T) {
		r := e.do(t, "POST", "/v1/conversations", a.Token, map[string]any{"kind": "group", "title": "Team", "members": []string{b.ID, b.ID}})
		r.ok(t, http.StatusCreated, &group)
		keys(t, r.body, "id", "kind", "title", "members")
		if group.Kind != "group" || group.Title == nil || *group.Title != "Team" || group.ID == direct.ID {
			t.Fatalf("got %s", r.body)
		}
		m := slices.Sorted(slices.Values(group.Members))
		if want := slices.Sorted(slices.Values([]string{a.ID, b.ID})); !slices.Equal(m, want) {
			t.Fatalf("members %v, want %v (creator included, duplicates dropped)", m, want)
		}
		var owner string
		if err := e.pool.QueryRow(context.Background(), "SELECT user_id FROM members WHERE conv_id=$1 AND role='owner'", group.ID).Scan(&owner); err != nil || owner != a.ID {
			t.Fatalf("owner %q (%v), want the creator %s", owner, err, a.ID)
		}
		// A second group with the same people is a new conversation.
		if g2 := e.createConv(t, a, "group", "Team", b.ID); g2.ID == group.ID {
			t.Fatalf("second group reused id %s", g2.ID)
		}
	})

	t.Run("list", func(t *testing.T) {
		l := e.convs(t, a)
		if len(l) != 3 {
			t.Fatalf("alice sees %d conversations, want 3", len(l))
		}
		d, g := l[direct.ID], l[group.ID]
		if d.Kind != "direct" || *d.Title != "" || g.Kind != "group" || *g.Title != "Team" {
			t.Fatalf("got %+v %+v", d, g)
		}
		for _, cv := range []convJSON{d, g} {
			if *cv.LastSeq != 0 || *cv.ReadSeq != 0 || *cv.Unread != 0 {
				t.Fatalf("a new conversation: last_seq %d read_seq %d unread %d, want 0s", *cv.LastSeq, *cv.ReadSeq, *cv.Unread)
			}
		}
		if l := e.convs(t, c); len(l) != 0 {
			t.Fatalf("carol sees %d conversations, want none", len(l))
		}
		if l := e.convs(t, b); len(l) != 3 {
			t.Fatalf("bob sees %d conversations, want 3", len(l))
		}
	})

	t.Run("list reflects messages", func(t *testing.T) {
		e.send(t, a, group.ID, "m1", map[string]string{"text": "hi"})
		e.send(t, a, group.ID, "m2", map[string]string{"text": "hi"})
		testenv.Eventually(t, wait, "last_seq 2 in bob's list", func() bool {
			g := e.convs(t, b)[group.ID]
			return *g.LastSeq == 2 && *g.Unread == 2
		})
		g := e.convs(t, a)[group.ID]
		if *g.LastSeq != 2 || *g.ReadSeq != 0 || *g.Unread != 0 {
			t.Fatalf("alice's own messages: last_seq %d read_seq %d unread %d, want 2 0 0", *g.LastSeq, *g.ReadSeq, *g.Unread)
		}
	})

	t.Run("get one", func(t *testing.T) {
		var g convJSON
		r := e.do(t, "GET", "/v1/conversations/"+group.ID, b.Token, nil)
		r.ok(t, http.StatusOK, &g)
		keys(t, r.body, "id", "kind", "title", "members", "last_seq", "read_seq", "unread")
		if g.ID != group.ID || g.Kind != "group" || *g.Title != "Team" || g.LastSeq == nil || g.ReadSeq == nil || g.Unread == nil {
			t.Fatalf("got %s", r.body)
		}
		m := slices.Sorted(slices.Values(g.Members))
		if want := slices.Sorted(slices.Values([]string{a.ID, b.ID})); !slices.Equal(m, want) {
			t.Fatalf("members %v, want %v", m, want)
		}
		var d convJSON
		r = e.do(t, "GET", "/v1/conversations/"+direct.ID, a.Token, nil)
		r.ok(t, http.StatusOK, &d)
		keys(t, r.body, "id", "kind", "title", "members", "last_seq", "read_seq", "unread")
		if d.Kind != "direct" || len(d.Members) != 2 {
			t.Fatalf("got %s", r.body)
		}
	})
	t.Run("get one refused", func(t *testing.T) {
		e.do(t, "GET", "/v1/conversations/"+group.ID, c.Token, nil).fails(t, 403, "forbidden")
		e.do(t, "GET", "/v1/conversations/"+direct.ID, c.Token, nil).fails(t, 403, "forbidden")
		e.do(t, "GET", "/v1/conversations/01ARZ3NDEKTSV4RRFFQ69G5FAV", a.Token, nil).fails(t, 404, "not_found")
		e.do(t, "GET", "/v1/conversations/no.such*conv", a.Token, nil).fails(t, 404, "not_found")
	})
}

// ---------------------------------------------------------------------------
// Membership

func TestMembership(t *testing.T) {
	t.Parallel()
	e := start(t)
	owner, b, c, d := e.register(t, "owner"), e.register(t, "bob"), e.register(t, "carol"), e.register(t, "dave")
	g := e.createConv(t, owner, "group", "G", b.ID)
	direct := e.createConv(t, owner, "direct", "", b.ID)
	members := func(t *testing.T, conv string) []string {
		t.Helper()
		var cv convJSON
		e.do(t, "GET", "/v1/conversations/"+conv, owner.Token, nil).ok(t, http.StatusOK, &cv)
		return slices.Sorted(slices.Values(cv.Members))
	}
	sorted := func(ids ...string) []string { return slices.Sorted(slices.Values(ids)) }
	addPath := "/v1/conversations/" + g.ID + "/members"

	e.send(t, owner, g.ID, "before-1", "one")
	e.send(t, b, g.ID, "before-2", "two")

	var joinSeq int64
	t.Run("owner adds", func(t *testing.T) {
		e.do(t, "POST", addPath, owner.Token, map[string]string{"user_id": c.ID}).ok(t, http.StatusNoContent, nil)
		if m := members(t, g.ID); !slices.Equal(m, sorted(owner.ID, b.ID, c.ID)) {
			t.Fatalf("members %v", m)
		}
		p := e.page(t, owner, g.ID, "")
		if *p.Head != 3 || len(p.Events) != 3 {
			t.Fatalf("head %d, %d events; want 3", *p.Head, len(p.Events))
		}
		ev := p.Events[2]
		if ev.Kind != "member_joined" || ev.User != c.ID || ev.From != owner.ID || ev.Seq != 3 || ev.Conv != g.ID || ev.TS <= 0 || ev.Body != nil {
			t.Fatalf("join event %+v", ev)
		}
		joinSeq = ev.Seq
		// The new member appears in their list.
		if _, ok := e.convs(t, c)[g.ID]; !ok {
			t.Fatalf("carol does not see the group")
		}
	})
	t.Run("adding a member again changes nothing", func(t *testing.T) {
		e.do(t, "POST", addPath, owner.Token, map[string]string{"user_id": c.ID}).ok(t, http.StatusNoContent, nil)
		if h := e.head(t, owner, g.ID); h != 3 {
			t.Fatalf("head %d, want 3", h)
		}
	})
	t.Run("late joiner sees history from the join on", func(t *testing.T) {
		e.send(t, owner, g.ID, "after-1", "four")
		p := e.page(t, c, g.ID, "")
		if !slices.Equal(p.seqs(), []int64{joinSeq, joinSeq + 1}) || *p.Head != 4 || *p.HasMore {
			t.Fatalf("latest: seqs %v head %d has_more %v", p.seqs(), *p.Head, *p.HasMore)
		}
		if p.Events[0].Kind != "member_joined" || p.Events[0].User != c.ID {
			t.Fatalf("first visible event %+v", p.Events[0])
		}
		p = e.page(t, c, g.ID, "?after_seq=0")
		if !slices.Equal(p.seqs(), []int64{joinSeq, joinSeq + 1}) || *p.HasMore {
			t.Fatalf("after_seq=0: seqs %v has_more %v", p.seqs(), *p.HasMore)
		}
		p = e.page(t, c, g.ID, "?before_seq=4")
		if !slices.Equal(p.seqs(), []int64{joinSeq}) || *p.HasMore {
			t.Fatalf("before_seq=4: seqs %v has_more %v", p.seqs(), *p.HasMore)
		}
		p = e.page(t, c, g.ID, fmt.Sprintf("?before_seq=%d", joinSeq))
		if len(p.Events) != 0 || *p.HasMore {
			t.Fatalf("before the join: seqs %v has_more %v", p.seqs(), *p.HasMore)
		}
		// Messages before the join are not unread for the newcomer.
		// The unread projector applies events in order: once it counts seq
		// 4 it has seen the earlier ones too.
		testenv.Eventually(t, wait, "carol's unread", func() bool {
			cv := e.convs(t, c)[g.ID]
			return *cv.LastSeq == 4 && *cv.Unread >= 1
		})
		if cv := e.convs(t, c)[g.ID]; *cv.Unread != 1 {
			t.Fatalf("carol's unread %d, want 1 (only the message after her join)", *cv.Unread)
		}
		// The founding members still see everything.
		if p := e.page(t, b, g.ID, ""); !slices.Equal(p.seqs(), seqRange(1, 4)) {
			t.Fatalf("bob sees %v", p.seqs())
		}
	})
	t.Run("add refused", func(t *testing.T) {
		before := e.head(t, owner, g.ID)
		cases := []struct {
			name   string
			u      user
			path   string
			body   any
			status int
			code   string
		}{
			{"member adds", b, addPath, map[string]string{"user_id": d.ID}, 403, "forbidden"},
			{"non-member adds", d, addPath, map[string]string{"user_id": d.ID}, 403, "forbidden"},
			{"to a direct conversation", owner, "/v1/conversations/" + direct.ID + "/members", map[string]string{"user_id": d.ID}, 400, "bad_request"},
			{"unknown user", owner, addPath, map[string]string{"user_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}, 404, "not_found"},
			{"unknown conversation", owner, "/v1/conversations/01ARZ3NDEKTSV4RRFFQ69G5FAV/members", map[string]string{"user_id": d.ID}, 404, "not_found"},
			{"malformed JSON", owner, addPath, `{"user_id":`, 400, "bad_request"},
			{"non-object", owner, addPath, `["x"]`, 400, "bad_request"},
		}
		for _, cs := range cases {
			t.Run(cs.name, func(t *testing.T) {
				e.do(t, "POST", cs.path, cs.u.Token, cs.body).fails(t, cs.status, cs.code)
			})
		}
		if h := e.head(t, owner, g.ID); h != before {
			t.Fatalf("head moved %d -> %d", before, h)
		}
		if m := members(t, g.ID); !slices.Equal(m, sorted(owner.ID, b.ID, c.ID)) {
			t.Fatalf("members changed: %v", m)
		}
		if m := members(t, direct.ID); !slices.Equal(m, sorted(owner.ID, b.ID)) {
			t.Fatalf("direct members changed: %v", m)
		}
	})
	t.Run("nobody leaves a direct conversation", func(t *testing.T) {
		// A direct conversation is unique per pair: one that lost a member
		// would be answered to "create direct" again but unreadable.
		dpath := "/v1/conversations/" + direct.ID + "/members/"
		e.do(t, "DELETE", dpath+b.ID, b.Token, nil).fails(t, 400, "bad_request")
		e.do(t, "DELETE", dpath+b.ID, owner.Token, nil).fails(t, 400, "bad_request")
		e.do(t, "DELETE", dpath+b.ID, d.Token, nil).fails(t, 403, "forbidden")
		if m := members(t, direct.ID); !slices.Equal(m, sorted(owner.ID, b.ID)) {
			t.Fatalf("direct members changed: %v", m)
		}
		if h := e.head(t, owner, direct.ID); h != 0 {
			t.Fatalf("direct head %d, want 0", h)
		}
		var again convJSON
		e.do(t, "POST", "/v1/conversations", b.Token, map[string]any{"kind": "direct", "members": []string{owner.ID}}).ok(t, 200, &again)
		if again.ID != direct.ID {
			t.Fatalf("direct id %s, want %s", again.ID, direct.ID)
		}
		e.do(t, "GET", "/v1/conversations/"+direct.ID+"/messages", b.Token, nil).ok(t, 200, nil)
	})
	t.Run("member leaves", func(t *testing.T) {
		before := e.head(t, owner, g.ID)
		e.do(t, "DELETE", addPath+"/"+b.ID, b.Token, nil).ok(t, http.StatusNoContent, nil)
		p := e.page(t, owner, g.ID, fmt.Sprintf("?after_seq=%d", before))
		if len(p.Events) != 1 || p.Events[0].Kind != "member_left" || p.Events[0].User != b.ID || p.Events[0].From != b.ID || p.Events[0].Seq != before+1 {
			t.Fatalf("leave event: %+v", p.Events)
		}
		if m := members(t, g.ID); !slices.Equal(m, sorted(owner.ID, c.ID)) {
			t.Fatalf("members %v", m)
		}
		// Bob is out: no reading, no writing, not in his list.
		e.do(t, "GET", "/v1/conversations/"+g.ID+"/messages", b.Token, nil).fails(t, 403, "forbidden")
		e.do(t, "GET", "/v1/conversations/"+g.ID, b.Token, nil).fails(t, 403, "forbidden")
		e.do(t, "POST", "/v1/conversations/"+g.ID+"/messages", b.Token, map[string]any{"id": "late", "body": "x"}).fails(t, 403, "forbidden")
		if _, ok := e.convs(t, b)[g.ID]; ok {
			t.Fatalf("bob still lists the group")
		}
		if h := e.head(t, owner, g.ID); h != before+1 {
			t.Fatalf("head %d, want %d", h, before+1)
		}
		// Leaving twice: not a member any more.
		e.do(t, "DELETE", addPath+"/"+b.ID, b.Token, nil).fails(t, 403, "forbidden")
	})
	t.Run("owner removes", func(t *testing.T) {
		e.do(t, "POST", addPath, owner.Token, map[string]string{"user_id": d.ID}).ok(t, http.StatusNoContent, nil)
		before := e.head(t, owner, g.ID)
		// A member may not remove someone else.
		e.do(t, "DELETE", addPath+"/"+d.ID, c.Token, nil).fails(t, 403, "forbidden")
		e.do(t, "DELETE", addPath+"/"+owner.ID, c.Token, nil).fails(t, 403, "forbidden")
		// Nor may an outsider.
		e.do(t, "DELETE", addPath+"/"+d.ID, b.Token, nil).fails(t, 403, "forbidden")
		if h := e.head(t, owner, g.ID); h != before {
			t.Fatalf("refused removals moved the head %d -> %d", before, h)
		}
		if m := members(t, g.ID); !slices.Equal(m, sorted(owner.ID, c.ID, d.ID)) {
			t.Fatalf("members %v", m)
		}
		e.do(t, "DELETE", addPath+"/"+d.ID, owner.Token, nil).ok(t, http.StatusNoContent, nil)
		p := e.page(t, owner, g.ID, fmt.Sprintf("?after_seq=%d", before))
		if len(p.Events) != 1 || p.Events[0].Kind != "member_left" || p.Events[0].User != d.ID || p.Events[0].From != owner.ID {
			t.Fatalf("removal event: %+v", p.Events)
		}
		if m := members(t, g.ID); !slices.Equal(m, sorted(owner.ID, c.ID)) {
			t.Fatalf("members %v", m)
		}
		e.do(t, "GET", "/v1/conversations/"+g.ID+"/messages", d.Token, nil).fails(t, 403, "forbidden")
		// Removing someone who is not a member.
		e.do(t, "DELETE", addPath+"/"+b.ID, owner.Token, nil).fails(t, 404, "not_found")
		e.do(t, "DELETE", "/v1/conversations/01ARZ3NDEKTSV4RRFFQ69G5FAV/members/"+c.ID, owner.Token, nil).fails(t, 404, "not_found")
	})
	t.Run("rejoin sees history from the new join", func(t *testing.T) {
		e.do(t, "POST", addPath, owner.Token, map[string]string{"user_id": b.ID}).ok(t, http.StatusNoContent, nil)
		head := e.head(t, owner, g.ID)
		p := e.page(t, b, g.ID, "?after_seq=0")
		if len(p.Events) != 1 || p.Events[0].Seq != head || p.Events[0].Kind != "member_joined" || p.Events[0].User != b.ID {
			t.Fatalf("bob after rejoining sees %+v (head %d)", p.Events, head)
		}
		// And may write again.
		if s := e.send(t, b, g.ID, "back", "hi again"); s.Seq != head+1 {
			t.Fatalf("seq %d, want %d", s.Seq, head+1)
		}
	})
}

// ---------------------------------------------------------------------------
// Messages

func TestMessages(t *testing.T) {
	t.Parallel()
	e := start(t)
	a, b, c := e.register(t, "alice"), e.register(t, "bob"), e.register(t, "carol")
	conv := e.createConv(t, a, "direct", "", b.ID).ID
	path := "/v1/conversations/" + conv + "/messages"

	var first sent
	t.Run("send", func(t *testing.T) {
		first = e.send(t, a, conv, "01JABCDEF", map[string]string{"text": "hi"})
		if first.Seq != 1 {
			t.Fatalf("first seq %d, want 1", first.Seq)
		}
		if now := time.Now().UnixMilli(); first.TS < now-60_000 || first.TS > now+60_000 {
			t.Fatalf("ts %d is not unix milliseconds near %d", first.TS, now)
		}
		p := e.page(t, b, conv, "")
		if len(p.Events) != 1 {
			t.Fatalf("events %+v", p.Events)
		}
		ev := p.Events[0]
		if ev.Conv != conv || ev.Seq != 1 || ev.Kind != "message" || ev.ID != "01JABCDEF" || ev.From != a.ID || ev.TS != first.TS || string(ev.Body) != `{"text":"hi"}` || ev.Recalled {
			t.Fatalf("event %+v body %s", ev, ev.Body)
		}
	})
	t.Run("resend is the same command", func(t *testing.T) {
		for _, body := range []any{map[string]string{"text": "hi"}, map[string]string{"text": "changed"}} {
			again := e.send(t, a, conv, "01JABCDEF", body)
			if again != first {
				t.Fatalf("resend answered %+v, want %+v", again, first)
			}
		}
		if h := e.head(t, a, conv); h != 1 {
			t.Fatalf("head %d after resends, want 1", h)
		}
		testenv.Eventually(t, wait, "the projector to write seq 1", func() bool { return e.count(t, "events") >= 1 })
		if n := e.count(t, "events"); n != 1 {
			t.Fatalf("%d events stored, want 1", n)
		}
		p := e.page(t, a, conv, "")
		if string(p.Events[0].Body) != `{"text":"hi"}` {
			t.Fatalf("resend changed the body: %s", p.Events[0].Body)
		}
	})
	t.Run("ids are scoped to the sender", func(t *testing.T) {
		s := e.send(t, b, conv, "01JABCDEF", "bob's")
		if s.Seq != 2 {
			t.Fatalf("bob's message with alice's id: seq %d, want 2", s.Seq)
		}
	})
	t.Run("seqs are 1..n in order", func(t *testing.T) {
		for i := int64(3); i <= 12; i++ {
			u := a
			if i%2 == 0 {
				u = b
			}
			if s := e.send(t, u, conv, fmt.Sprintf("m-%d", i), map[string]int64{"n": i}); s.Seq != i {
				t.Fatalf("seq %d, want %d", s.Seq, i)
			}
		}
		p := e.page(t, a, conv, "")
		if !slices.Equal(p.seqs(), seqRange(1, 12)) || *p.Head != 12 || *p.HasMore {
			t.Fatalf("seqs %v head %d has_more %v", p.seqs(), *p.Head, *p.HasMore)
		}
		for _, ev := range p.Events[2:] {
			if want := fmt.Sprintf(`{"n":%d}`, ev.Seq); string(ev.Body) != want || ev.ID != fmt.Sprintf("m-%d", ev.Seq) {
				t.Fatalf("seq %d: id %s body %s", ev.Seq, ev.ID, ev.Body)
			}
		}
	})
	t.Run("bodies of any JSON", func(t *testing.T) {
		for i, body := range []string{`"text"`, `42`, `[1,2,{"a":null}]`, `{"nested":{"deep":[true,false]}}`, `"ünïcödé ✓"`} {
			r := e.do(t, "POST", path, a.Token, fmt.Sprintf(`{"id":"any-%d","body":%s}`, i, body))
			var s sent
			r.ok(t, http.StatusOK, &s)
			var got page
			e.do(t, "GET", fmt.Sprintf("%s?after_seq=%d&limit=1", path, s.Seq-1), a.Token, nil).ok(t, 200, &got)
			var want, have any
			_ = json.Unmarshal([]byte(body), &want)
			_ = json.Unmarshal(got.Events[0].Body, &have)
			if fmt.Sprint(want) != fmt.Sprint(have) {
				t.Fatalf("body %s came back as %s", body, got.Events[0].Body)
			}
		}
	})
	t.Run("body at exactly 16 KiB", func(t *testing.T) {
		body := `"` + strings.Repeat("x", 16<<10-2) + `"`
		r := e.do(t, "POST", path, a.Token, `{"id":"max","body":`+body+`}`)
		r.ok(t, http.StatusOK, nil)
	})

	t.Run("body size is measured encoded, not as spaced in the request", func(t *testing.T) {
		padded := `{"id":"padded","body":{"a" :  1` + strings.Repeat(" ", 20<<10) + `}}`
		var s sent
		e.do(t, "POST", path, a.Token, padded).ok(t, http.StatusOK, &s)
		p := e.page(t, a, conv, fmt.Sprintf("?after_seq=%d&limit=1", s.Seq-1))
		if string(p.Events[0].Body) != `{"a":1}` {
			t.Fatalf("stored body %s", p.Events[0].Body)
		}
	})

	headNow := func() int64 { return e.head(t, a, conv) }
	t.Run("send refused", func(t *testing.T) {
		before := headNow()
		big := `"` + strings.Repeat("x", 16<<10-1) + `"` // 16 KiB + 1 encoded
		cases := []struct {
			name   string
			u      user
			path   string
			body   any
			status int
			code   string
		}{
			{"body over 16 KiB", a, path, `{"id":"big1","body":` + big + `}`, 413, "too_large"},
			{"object body over 16 KiB", a, path, map[string]any{"id": "big2", "body": map[string]string{"text": strings.Repeat("y", 16<<10)}}, 413, "too_large"},
			{"request over 64 KiB", a, path, map[string]any{"id": "big3", "body": strings.Repeat("z", 100<<10)}, 413, "too_large"},
			{"missing id", a, path, map[string]any{"body": "x"}, 400, "bad_request"},
			{"empty id", a, path, map[string]any{"id": "", "body": "x"}, 400, "bad_request"},
			{"id with a space", a, path, map[string]any{"id": "a b", "body": "x"}, 400, "bad_request"},
			{"id with a dot", a, path, map[string]any{"id": "a.b", "body": "x"}, 400, "bad_request"},
			{"id with a wildcard", a, path, map[string]any{"id": "a*", "body": "x"}, 400, "bad_request"},
			{"non-ascii id", a, path, map[string]any{"id": "é", "body": "x"}, 400, "bad_request"},
			{"65-char id", a, path, map[string]any{"id": strings.Repeat("a", 65), "body": "x"}, 400, "bad_request"},
			{"numeric id", a, path, `{"id":5,"body":"x"}`, 400, "bad_request"},
			{"missing body", a, path, map[string]any{"id": "nobody"}, 400, "bad_request"},
			{"null body", a, path, `{"id":"nullbody","body":null}`, 400, "bad_request"},
			{"malformed JSON", a, path, `{"id":"x","body":`, 400, "bad_request"},
			{"non-object", a, path, `["x"]`, 400, "bad_request"},
			{"empty request", a, path, ``, 400, "bad_request"},
			{"non-member", c, path, map[string]any{"id": "intruder", "body": "x"}, 403, "forbidden"},
		}
		for _, cs := range cases {
			t.Run(cs.name, func(t *testing.T) {
				e.do(t, "POST", cs.path, cs.u.Token, cs.body).fails(t, cs.status, cs.code)
			})
		}
		if h := headNow(); h != before {
			t.Fatalf("refused sends moved the head %d -> %d", before, h)
		}
		// A 64-char id is fine, and the ids refused above were not burnt.
		e.send(t, a, conv, strings.Repeat("a", 64), "ok")
		if s := e.send(t, a, conv, "big1", "small now"); s.Seq != before+2 {
			t.Fatalf("seq %d, want %d", s.Seq, before+2)
		}
	})
	t.Run("non-member stores nothing", func(t *testing.T) {
		testenv.Eventually(t, wait, "the projector to catch up", func() bool {
			var n int64
			_ = e.pool.QueryRow(context.Background(), "SELECT coalesce(max(last_seq),0) FROM heads WHERE conv_id=$1", conv).Scan(&n)
			return n == headNow()
		})
		var n int
		if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM events WHERE sender=$1", c.ID).Scan(&n); err != nil || n != 0 {
			t.Fatalf("carol has %d stored events (%v)", n, err)
		}
	})
	t.Run("nonexistent conversation", func(t *testing.T) {
		e.do(t, "POST", "/v1/conversations/01ARZ3NDEKTSV4RRFFQ69G5FAV/messages", a.Token, map[string]any{"id": "x", "body": "x"}).fails(t, 404, "not_found")
		e.do(t, "GET", "/v1/conversations/01ARZ3NDEKTSV4RRFFQ69G5FAV/messages", a.Token, nil).fails(t, 404, "not_found")
		e.do(t, "GET", "/v1/conversations/"+conv+"/messages", c.Token, nil).fails(t, 403, "forbidden")
	})
	t.Run("recall refused", func(t *testing.T) {
		// Only the request checks; recall itself is the sequencer's.
		rpath := "/v1/conversations/" + conv + "/recall"
		before := headNow()
		cases := []struct {
			name   string
			u      user
			path   string
			body   any
			status int
			code   string
		}{
			{"missing id", a, rpath, `{"target":1}`, 400, "bad_request"},
			{"bad id", a, rpath, `{"id":"a b","target":1}`, 400, "bad_request"},
			{"no target", a, rpath, `{"id":"rc1"}`, 400, "bad_request"},
			{"negative target", a, rpath, `{"id":"rc1","target":-3}`, 400, "bad_request"},
			{"malformed JSON", a, rpath, `{"id":`, 400, "bad_request"},
			{"non-member", c, rpath, `{"id":"rc1","target":1}`, 403, "forbidden"},
			{"nonexistent conversation", a, "/v1/conversations/01ARZ3NDEKTSV4RRFFQ69G5FAV/recall", `{"id":"rc1","target":1}`, 404, "not_found"},
		}
		for _, cs := range cases {
			t.Run(cs.name, func(t *testing.T) {
				e.do(t, "POST", cs.path, cs.u.Token, cs.body).fails(t, cs.status, cs.code)
			})
		}
		if h := headNow(); h != before {
			t.Fatalf("refused recalls moved the head %d -> %d", before, h)
		}
	})
	t.Run("concurrent sends get distinct gap-free seqs", func(t *testing.T) {
		before := headNow()
		const n = 20
		var wg sync.WaitGroup
		seqs := make([]int64, n)
		errs := make([]string, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				u := a
				if i%2 == 1 {
					u = b
				}
				body := fmt.Sprintf(`{"id":"conc-%d","body":%d}`, i, i)
				req, _ := http.NewRequest("POST", e.base+path, strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+u.Token)
				res, err := e.client.Do(req)
				if err != nil {
					errs[i] = err.Error()
					return
				}
				defer res.Body.Close()
				var s sent
				if res.StatusCode != 200 || json.NewDecoder(res.Body).Decode(&s) != nil {
					errs[i] = fmt.Sprintf("status %d", res.StatusCode)
				}
				seqs[i] = s.Seq
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != "" {
				t.Fatalf("send %d: %s", i, err)
			}
		}
		slices.Sort(seqs)
		if !slices.Equal(seqs, seqRange(before+1, before+n)) {
			t.Fatalf("seqs %v", seqs)
		}
	})
}

// ---------------------------------------------------------------------------
// Paging

func TestPaging(t *testing.T) {
	t.Parallel()
	e := start(t)
	a := e.register(t, "alice")
	conv := e.createConv(t, a, "group", "paging").ID
	for i := int64(1); i <= 120; i++ {
		if s := e.send(t, a, conv, fmt.Sprintf("p%d", i), i); s.Seq != i {
			t.Fatalf("seq %d, want %d", s.Seq, i)
		}
	}

	cases := []struct {
		query    string
		from, to int64 // expected seqs; to < from for none
		hasMore  bool
	}{
		{"", 71, 120, true},
		{"?limit=10", 111, 120, true},
		{"?limit=0", 71, 120, true}, // 0: the default
		{"?after_seq=0&limit=10", 1, 10, true},
		{"?after_seq=0", 1, 50, true},
		{"?after_seq=100&limit=10", 101, 110, true},
		{"?after_seq=110&limit=10", 111, 120, false},
		{"?after_seq=115", 116, 120, false},
		{"?after_seq=119", 120, 120, false},
		{"?after_seq=120", 1, 0, false},
		{"?after_seq=500", 1, 0, false},
		{"?after_seq=0&limit=120", 1, 120, false},
		{"?after_seq=0&limit=119", 1, 119, true},
		{"?before_seq=11&limit=5", 6, 10, true},
		{"?before_seq=3", 1, 2, false},
		{"?before_seq=6&limit=5", 1, 5, false},
		{"?before_seq=7&limit=5", 2, 6, true},
		{"?before_seq=1", 1, 0, false},
		{"?before_seq=0", 1, 0, false},
		{"?before_seq=121", 71, 120, true},
		{"?before_seq=1000&limit=10", 111, 120, true},
		{"?limit=1000", 1, 120, false},
		{"?limit=120", 1, 120, false},
		{"?limit=119", 2, 120, true},
	}
	for _, c := range cases {
		t.Run("query "+c.query, func(t *testing.T) {
			p := e.page(t, a, conv, c.query)
			var want []int64
			if c.to >= c.from {
				want = seqRange(c.from, c.to)
			}
			if got := p.seqs(); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
				t.Fatalf("seqs %v, want %d..%d", got, c.from, c.to)
			}
			if *p.Head != 120 || *p.HasMore != c.hasMore {
				t.Fatalf("head %d has_more %v, want 120 %v", *p.Head, *p.HasMore, c.hasMore)
			}
			for _, ev := range p.Events {
				if ev.Kind != "message" || ev.Conv != conv || ev.ID != fmt.Sprintf("p%d", ev.Seq) || string(ev.Body) != fmt.Sprint(ev.Seq) {
					t.Fatalf("event %+v body %s", ev, ev.Body)
				}
			}
		})
	}

	t.Run("bad parameters", func(t *testing.T) {
		for _, q := range []string{
			"?after_seq=-1", "?before_seq=-1", "?limit=-1", "?limit=abc", "?after_seq=abc",
			"?before_seq=1.5", "?after_seq=1e3", "?limit=", "?after_seq=", "?before_seq=0x10",
			"?limit=99999999999999999999", "?after_seq=%20",
		} {
			t.Run(q, func(t *testing.T) {
				e.do(t, "GET", "/v1/conversations/"+conv+"/messages"+q, a.Token, nil).fails(t, 400, "bad_request")
			})
		}
	})

	t.Run("limit is capped at 200", func(t *testing.T) {
		big := e.createConv(t, a, "group", "big").ID
		const n = 230
		var wg sync.WaitGroup
		work := make(chan int)
		errs := make(chan string, n)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					req, _ := http.NewRequest("POST", e.base+"/v1/conversations/"+big+"/messages", strings.NewReader(fmt.Sprintf(`{"id":"b%d","body":%d}`, i, i)))
					req.Header.Set("Authorization", "Bearer "+a.Token)
					res, err := e.client.Do(req)
					if err != nil {
						errs <- err.Error()
						continue
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != 200 {
						errs <- fmt.Sprintf("status %d", res.StatusCode)
					}
				}
			}()
		}
		for i := range n {
			work <- i
		}
		close(work)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("send: %s", err)
		}
		cases := []struct {
			query    string
			from, to int64
			hasMore  bool
		}{
			{"?limit=1000", n - 199, n, true},
			{"?limit=201", n - 199, n, true},
			{"?after_seq=0&limit=1000", 1, 200, true},
			{"?before_seq=221&limit=1000", 21, 220, true},
			{"?after_seq=29&limit=1000", 30, 229, true},
			{"?after_seq=30&limit=1000", 31, n, false},
		}
		for _, c := range cases {
			p := e.page(t, a, big, c.query)
			if got := p.seqs(); !slices.Equal(got, seqRange(c.from, c.to)) || *p.Head != n || *p.HasMore != c.hasMore {
				t.Fatalf("%s: seqs %d..%d (%d) head %d has_more %v; want %d..%d has_more %v", c.query,
					got[0], got[len(got)-1], len(got), *p.Head, *p.HasMore, c.from, c.to, c.hasMore)
			}
		}
	})

	t.Run("empty conversation", func(t *testing.T) {
		empty := e.createConv(t, a, "group", "empty").ID
		for _, q := range []string{"", "?after_seq=0", "?before_seq=10"} {
			p := e.page(t, a, empty, q)
			if len(p.Events) != 0 || *p.Head != 0 || *p.HasMore {
				t.Fatalf("%q: %+v head %d has_more %v", q, p.Events, *p.Head, *p.HasMore)
			}
		}
	})
}

// ---------------------------------------------------------------------------
// Read pointers and unread counts

func TestReadAndUnread(t *testing.T) {
	t.Parallel()
	e := start(t)
	a, b, c := e.register(t, "alice"), e.register(t, "bob"), e.register(t, "carol")
	conv := e.createConv(t, a, "direct", "", b.ID).ID
	quiet := e.createConv(t, a, "group", "quiet", b.ID).ID
	readPath := "/v1/conversations/" + conv + "/read"
	for i := 1; i <= 10; i++ {
		e.send(t, a, conv, fmt.Sprintf("r%d", i), i)
	}
	e.send(t, b, conv, "from-bob", "bob") // seq 11
	// History and unread counts are two projectors: wait for both to have
	// applied seq 11 (bob's message is the one alice has unread).
	testenv.Eventually(t, wait, "the projectors to apply seq 11", func() bool {
		_, per := e.unread(t, a)
		return *e.convs(t, b)[conv].LastSeq == 11 && per[conv] == 1
	})

	readSeq := func(t *testing.T, u user) int64 {
		t.Helper()
		return *e.convs(t, u)[conv].ReadSeq
	}

	t.Run("unread before reading", func(t *testing.T) {
		total, per := e.unread(t, b)
		if total != 10 || len(per) != 1 || per[conv] != 10 {
			t.Fatalf("bob: total %d per %v, want 10 {%s:10}", total, per, conv)
		}
		// Alice's own ten messages never count; bob's one does.
		total, per = e.unread(t, a)
		if total != 1 || len(per) != 1 || per[conv] != 1 {
			t.Fatalf("alice: total %d per %v, want 1", total, per)
		}
		// Nobody else has anything; the quiet group is never listed.
		if total, per := e.unread(t, c); total != 0 || len(per) != 0 {
			t.Fatalf("carol: total %d per %v", total, per)
		}
		if cv := e.convs(t, b)[conv]; *cv.Unread != 10 || *cv.ReadSeq != 0 {
			t.Fatalf("bob's list entry: unread %d read_seq %d", *cv.Unread, *cv.ReadSeq)
		}
		if cv := e.convs(t, b)[quiet]; *cv.Unread != 0 {
			t.Fatalf("quiet group unread %d", *cv.Unread)
		}
	})
	t.Run("read moves forward", func(t *testing.T) {
		e.do(t, "POST", readPath, b.Token, map[string]int64{"seq": 5}).ok(t, http.StatusNoContent, nil)
		if r := readSeq(t, b); r != 5 {
			t.Fatalf("read_seq %d, want 5", r)
		}
		if total, per := e.unread(t, b); total != 5 || per[conv] != 5 {
			t.Fatalf("total %d per %v, want 5", total, per)
		}
		if cv := e.convs(t, b)[conv]; *cv.Unread != 5 {
			t.Fatalf("list unread %d, want 5", *cv.Unread)
		}
		// Alice's pointer is her own.
		if r := readSeq(t, a); r != 0 {
			t.Fatalf("alice's read_seq %d, want 0", r)
		}
	})
	t.Run("read never moves back", func(t *testing.T) {
		e.do(t, "POST", readPath, b.Token, map[string]int64{"seq": 2}).ok(t, http.StatusNoContent, nil)
		e.do(t, "POST", readPath, b.Token, map[string]int64{"seq": 0}).ok(t, http.StatusNoContent, nil)
		if r := readSeq(t, b); r != 5 {
			t.Fatalf("read_seq %d, want 5", r)
		}
		if total, _ := e.unread(t, b); total != 5 {
			t.Fatalf("total %d, want 5", total)
		}
	})
	t.Run("read beyond the head is clamped", func(t *testing.T) {
		e.do(t, "POST", readPath, b.Token, map[string]int64{"seq": 1000}).ok(t, http.StatusNoContent, nil)
		if r := readSeq(t, b); r != 11 {
			t.Fatalf("read_seq %d, want the head 11", r)
		}
		if total, per := e.unread(t, b); total != 0 || len(per) != 0 {
			t.Fatalf("total %d per %v, want nothing", total, per)
		}
		// A new message after reading counts again.
		e.send(t, a, conv, "r12", 12)
		testenv.Eventually(t, wait, "bob's unread to reach 1", func() bool {
			total, per := e.unread(t, b)
			return total == 1 && per[conv] == 1
		})
	})
	t.Run("own messages never count", func(t *testing.T) {
		for i := range 3 {
			e.send(t, b, conv, fmt.Sprintf("own-%d", i), "mine")
		}
		testenv.Eventually(t, wait, "alice to see bob's messages", func() bool {
			total, _ := e.unread(t, a)
			return total == 4
		})
		if total, per := e.unread(t, b); total != 1 || per[conv] != 1 {
			t.Fatalf("bob: total %d per %v, want 1 (own messages excluded)", total, per)
		}
	})
	t.Run("totals across conversations", func(t *testing.T) {
		e.send(t, a, quiet, "q1", "q")
		e.send(t, a, quiet, "q2", "q")
		testenv.Eventually(t, wait, "bob's total to include the group", func() bool {
			total, per := e.unread(t, b)
			return total == 3 && per[conv] == 1 && per[quiet] == 2 && len(per) == 2
		})
	})
	t.Run("read refused", func(t *testing.T) {
		cases := []struct {
			name   string
			u      user
			path   string
			body   any
			status int
			code   string
		}{
			{"negative", b, readPath, `{"seq":-1}`, 400, "bad_request"},
			{"missing seq", b, readPath, `{}`, 400, "bad_request"},
			{"string seq", b, readPath, `{"seq":"5"}`, 400, "bad_request"},
			{"fractional seq", b, readPath, `{"seq":1.5}`, 400, "bad_request"},
			{"malformed JSON", b, readPath, `{"seq":`, 400, "bad_request"},
			{"non-object", b, readPath, `5`, 400, "bad_request"},
			{"non-member", c, readPath, `{"seq":1}`, 403, "forbidden"},
			{"nonexistent conversation", b, "/v1/conversations/01ARZ3NDEKTSV4RRFFQ69G5FAV/read", `{"seq":1}`, 404, "not_found"},
		}
		before := readSeq(t, b)
		for _, cs := range cases {
			t.Run(cs.name, func(t *testing.T) {
				e.do(t, "POST", cs.path, cs.u.Token, cs.body).fails(t, cs.status, cs.code)
			})
		}
		if r := readSeq(t, b); r != before {
			t.Fatalf("read_seq moved %d -> %d", before, r)
		}
	})
}
