package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seqchat/seqchat/internal/auth"
	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/internal/wiring"
)

// startWith is start with a configuration change.
func startWith(t *testing.T, change func(*config.Config)) *env {
	t.Helper()
	cfg := testenv.Config(t)
	change(&cfg)
	a, cfg, err := startSystem(t, cfg, wiring.API, wiring.Sequencer, wiring.Projector)
	if err != nil {
		t.Fatalf("start system: %v", err)
	}
	t.Cleanup(func() { _ = a.Stop() })
	return &env{base: "http://" + a.Addr, pool: a.Pool, cfg: cfg, client: &http.Client{Timeout: 30 * time.Second}}
}

// from sends a request as if from client address addr (the test trusts
// X-Forwarded-For).
func (e *env) from(t *testing.T, addr, method, path string, body string) resp {
	t.Helper()
	req, _ := http.NewRequest(method, e.base+path, strings.NewReader(body))
	req.Header.Set("X-Forwarded-For", "10.9.9.9, "+addr) // the last entry is the proxy's
	res, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b := make([]byte, 4096)
	n, _ := res.Body.Read(b)
	return resp{status: res.StatusCode, header: res.Header, body: b[:n]}
}

// limited checks a rate limit's refusal: 429 rate_limited, a Retry-After
// in whole seconds, and a message that says when to retry too.
func limited(t *testing.T, r resp) {
	t.Helper()
	r.fails(t, http.StatusTooManyRequests, "rate_limited")
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if !strings.Contains(string(r.body), "; retry in ") {
		t.Fatalf("the message does not say when to retry: %s", r.body)
	}
}

// nextWindow sleeps until a window of length w has just begun, so a test's
// hits fall in one window.
func nextWindow(w time.Duration) {
	time.Sleep(w - time.Duration(time.Now().UnixNano()%int64(w)) + 20*time.Millisecond)
}

// Each abuse limit trips with 429 rate_limited and a Retry-After, and lifts
// when its window ends.
func TestAbuseLimits(t *testing.T) {
	t.Parallel()
	// Each step below must fit in one window of its limit: long enough for
	// a handful of requests on a loaded machine (sends, which go through
	// the sequencer, get longer ones), short enough to wait out.
	const window, cmdWindow = 5 * time.Second, 10 * time.Second
	e := startWith(t, func(c *config.Config) {
		c.RateLimits = true
		c.ClientIPHeader = "X-Forwarded-For"
		c.LoginFailuresPerUser, c.LoginFailuresPerAddr, c.LoginFailureWindow = 3, 5, window
		c.SignupsPerAddr, c.SignupWindow = 2, window
		c.UserCommands, c.UserCommandWindow = 5, cmdWindow
		c.MaxGroupMembers = 3
	})
	login := func(addr, name, pw string) resp {
		return e.from(t, addr, "POST", "/v1/sessions", fmt.Sprintf(`{"username":%q,"password":%q}`, name, pw))
	}
	signup := func(addr, name string) resp {
		return e.from(t, addr, "POST", "/v1/users", fmt.Sprintf(`{"username":%q,"password":"password-%s"}`, name, name))
	}
	nextWindow(window)
	for _, n := range []string{"alice", "bob"} {
		signup("10.0.0.1", n).ok(t, 201, nil)
	}

	t.Run("sign-ups per address", func(t *testing.T) {
		limited(t, signup("10.0.0.1", "carol"))
		signup("10.0.0.2", "carol").ok(t, 201, nil) // another address
		nextWindow(window)
		signup("10.0.0.1", "dave").ok(t, 201, nil)
		if n := e.count(t, "users"); n != 4 {
			t.Fatalf("%d users, want 4", n)
		}
	})

	t.Run("failed logins per username", func(t *testing.T) {
		nextWindow(window)
		for i := range 3 {
			login(fmt.Sprintf("10.1.0.%d", i), "alice", "wrong-password").fails(t, 401, "unauthorized")
		}
		// From anywhere, even with the right password: locked for the window.
		limited(t, login("10.1.0.9", "alice", "password-alice"))
		login("10.1.0.9", "bob", "password-bob").ok(t, 200, nil) // other users are not
		nextWindow(window)
		login("10.1.0.9", "alice", "password-alice").ok(t, 200, nil)
	})

	t.Run("failed logins per address", func(t *testing.T) {
		nextWindow(window)
		for i := range 5 {
			login("10.2.0.1", fmt.Sprintf("nobody%d", i), "wrong-password").fails(t, 401, "unauthorized")
		}
		limited(t, login("10.2.0.1", "bob", "password-bob"))
		login("10.2.0.2", "bob", "password-bob").ok(t, 200, nil)
		nextWindow(window)
		login("10.2.0.1", "bob", "password-bob").ok(t, 200, nil)
	})

	alice := user{Name: "alice", Token: e.login(t, "alice")}
	var me struct{ ID string }
	e.do(t, "GET", "/v1/me", alice.Token, nil).ok(t, 200, &me)
	alice.ID = me.ID
	bob := user{Name: "bob", Token: e.login(t, "bob")}
	e.do(t, "GET", "/v1/me", bob.Token, nil).ok(t, 200, &me)
	bob.ID = me.ID

	t.Run("commands per user", func(t *testing.T) {
		conv := e.createConv(t, alice, "direct", "", bob.ID)
		nextWindow(cmdWindow)
		for i := range 5 {
			e.send(t, alice, conv.ID, fmt.Sprintf("m%d", i), "x")
		}
		limited(t, e.do(t, "POST", "/v1/conversations/"+conv.ID+"/messages", alice.Token, map[string]any{"id": "m5", "body": "x"}))
		limited(t, e.do(t, "POST", "/v1/conversations/"+conv.ID+"/recall", alice.Token, map[string]any{"id": "r1", "target": 1}))
		e.send(t, bob, conv.ID, "b0", "x") // bob has his own count
		if h := e.head(t, alice, conv.ID); h != 6 {
			t.Fatalf("head %d, want 6: nothing refused is stored", h)
		}
		nextWindow(cmdWindow)
		e.send(t, alice, conv.ID, "m5", "x")
	})

	t.Run("refusals counted by limit", func(t *testing.T) {
		res, err := http.Get(e.base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		for _, want := range []string{
			`chat_rate_limited_total{limit="signups_per_addr"} 1`,
			`chat_rate_limited_total{limit="login_failures_per_user"} 1`,
			`chat_rate_limited_total{limit="login_failures_per_addr"} 1`,
			`chat_rate_limited_total{limit="user_commands"} 2`,
		} {
			if !strings.Contains(string(b), want+"\n") {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})

	t.Run("group size", func(t *testing.T) {
		var ids []string
		for i := range 3 {
			var u struct{ ID string }
			signup(fmt.Sprintf("10.3.0.%d", i), fmt.Sprintf("member%d", i)).ok(t, 201, &u)
			ids = append(ids, u.ID)
		}
		before := e.count(t, "conversations")
		e.do(t, "POST", "/v1/conversations", alice.Token, map[string]any{"kind": "group", "title": "big", "members": ids}).fails(t, 400, "bad_request")
		if e.count(t, "conversations") != before {
			t.Fatal("refused group stored")
		}
		g := e.createConv(t, alice, "group", "ok", ids[:2]...) // alice + 2 = 3
		e.do(t, "POST", "/v1/conversations/"+g.ID+"/members", alice.Token, map[string]string{"user_id": ids[2]}).fails(t, 400, "bad_request")
		var n int
		_ = e.pool.QueryRow(context.Background(), "SELECT count(*) FROM members WHERE conv_id=$1", g.ID).Scan(&n)
		if n != 3 {
			t.Fatalf("group has %d members, want 3", n)
		}
	})
}

// CHAT_RATE_LIMITS=off lifts every limit.
func TestAbuseLimitsOff(t *testing.T) {
	t.Parallel()
	e := startWith(t, func(c *config.Config) {
		c.RateLimits = false
		c.LoginFailuresPerUser, c.LoginFailuresPerAddr, c.SignupsPerAddr, c.UserCommands = 1, 1, 1, 1
	})
	a, b := e.register(t, "alice"), e.register(t, "bob")
	for range 5 {
		e.do(t, "POST", "/v1/sessions", "", map[string]string{"username": "alice", "password": "nope-nope"}).fails(t, 401, "unauthorized")
	}
	e.login(t, "alice")
	conv := e.createConv(t, a, "direct", "", b.ID)
	for i := range 5 {
		e.send(t, a, conv.ID, fmt.Sprintf("m%d", i), "x")
	}
}

// Every endpoint refuses a missing, expired and foreign-signed token, and a
// user who is not a member; hostile input is refused without storing or
// breaking anything.
func TestSecurityTable(t *testing.T) {
	t.Parallel()
	e := start(t)
	a, b, c := e.register(t, "alice"), e.register(t, "bob"), e.register(t, "carol")
	conv := e.createConv(t, a, "group", "g", b.ID)
	e.send(t, a, conv.ID, "m1", map[string]string{"text": "hi"})
	own, _ := auth.NewTokens(e.cfg.TokenSecret, time.Hour)
	expired, _, _ := own.Issue(a.ID, "s-expired", "", time.Now().Add(-2*time.Hour))
	other, _ := auth.NewTokens("some-other-secret-0123456789", time.Hour)
	foreign, _, _ := other.Issue(a.ID, "s-foreign", "", time.Now())
	none, _, _ := own.Issue("", "s-nobody", "", time.Now())

	testenv.Eventually(t, wait, "the message in history", func() bool { return e.count(t, "events") == 1 })
	cv := "/v1/conversations/" + conv.ID
	endpoints := []struct {
		method, path string
		body         any
		member       bool // refused to non-members (403)
	}{
		{"GET", "/v1/me", nil, false}, {"DELETE", "/v1/sessions/current", nil, false},
		{"GET", "/v1/friends", nil, false}, {"PUT", "/v1/friends/" + b.ID, nil, false}, {"DELETE", "/v1/friends/" + b.ID, nil, false},
		{"POST", "/v1/conversations", map[string]any{"kind": "direct", "members": []string{b.ID}}, false},
		{"GET", "/v1/conversations", nil, false}, {"GET", "/v1/unread", nil, false},
		{"GET", cv, nil, true},
		{"POST", cv + "/members", map[string]string{"user_id": c.ID}, true},
		{"DELETE", cv + "/members/" + b.ID, nil, true},
		{"GET", cv + "/messages", nil, true},
		{"POST", cv + "/messages", map[string]any{"id": "x1", "body": "x"}, true},
		{"POST", cv + "/read", map[string]int64{"seq": 1}, true},
		{"GET", cv + "/receipts", nil, true},
		{"POST", cv + "/recall", map[string]any{"id": "x2", "target": 1}, true},
	}
	before := map[string]int{"events": e.count(t, "events"), "members": e.count(t, "members"), "conversations": e.count(t, "conversations"), "revoked_sessions": e.count(t, "revoked_sessions")}
	for _, ep := range endpoints {
		for _, tok := range []struct{ name, token string }{{"no token", ""}, {"expired", expired}, {"other key", foreign}, {"no subject", none}, {"tampered", tamper(a.Token)}} {
			t.Run(ep.method+" "+ep.path+" "+tok.name, func(t *testing.T) {
				e.do(t, ep.method, ep.path, tok.token, ep.body).fails(t, 401, "unauthorized")
			})
		}
		if ep.member {
			t.Run(ep.method+" "+ep.path+" non-member", func(t *testing.T) {
				e.do(t, ep.method, ep.path, c.Token, ep.body).fails(t, 403, "forbidden")
			})
		}
	}
	for table, n := range before {
		if got := e.count(t, table); got != n {
			t.Fatalf("refused requests changed %s: %d -> %d", table, n, got)
		}
	}

	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	hostile := []struct {
		name, method, path string
		body               any
		status             int
		code               string
	}{
		{"sql in username", "POST", "/v1/users", `{"username":"x'); DROP TABLE users;--","password":"password1"}`, 400, "bad_request"},
		{"sql in login", "POST", "/v1/sessions", `{"username":"alice' OR '1'='1","password":"' OR '1'='1"}`, 401, "unauthorized"},
		{"sql in conversation id", "GET", "/v1/conversations/x'%20OR%20'1'='1/messages", nil, 404, "not_found"},
		{"sql in friend", "PUT", "/v1/friends/x'%20OR%201=1--", nil, 404, "not_found"},
		{"invalid utf-8 username", "POST", "/v1/users", "{\"username\":\"ab\xff\xfe\",\"password\":\"password1\"}", 400, "bad_request"},
		{"invalid utf-8 body", "POST", cv + "/messages", "{\"id\":\"u1\",\"body\":\"\xc3\x28\"}", 400, "bad_request"},
		{"deeply nested body", "POST", cv + "/messages", `{"id":"n1","body":` + deep + `}`, 400, "bad_request"},
		{"deeply nested login", "POST", "/v1/sessions", `{"username":` + deep + `}`, 400, "bad_request"},
		{"huge number seq", "POST", cv + "/read", `{"seq":1e400}`, 400, "bad_request"},
		{"overflowing seq", "POST", cv + "/read", `{"seq":92233720368547758070}`, 400, "bad_request"},
		{"negative seq", "POST", cv + "/read", `{"seq":-1}`, 400, "bad_request"},
		{"fractional seq", "POST", cv + "/read", `{"seq":1.5}`, 400, "bad_request"},
		{"negative target", "POST", cv + "/recall", `{"id":"r1","target":-5}`, 400, "bad_request"},
		{"absurd target", "POST", cv + "/recall", `{"id":"r2","target":9223372036854775807}`, 404, "not_found"},
		{"negative after_seq", "GET", cv + "/messages?after_seq=-1", nil, 400, "bad_request"},
		{"huge after_seq", "GET", cv + "/messages?after_seq=99999999999999999999", nil, 400, "bad_request"},
		{"negative limit", "GET", cv + "/messages?limit=-5", nil, 400, "bad_request"},
		{"hex limit", "GET", cv + "/messages?limit=0x10", nil, 400, "bad_request"},
		{"huge members list", "POST", "/v1/conversations", `{"kind":"group","members":[` + strings.Repeat(`"x",`, 12000) + `"x"]}`, 400, "bad_request"},
		{"body too large", "POST", cv + "/messages", `{"id":"big","body":"` + strings.Repeat("a", 70<<10) + `"}`, 413, "too_large"},
	}
	for _, h := range hostile {
		t.Run(h.name, func(t *testing.T) {
			e.do(t, h.method, h.path, a.Token, h.body).fails(t, h.status, h.code)
		})
	}
	// Absurd but valid numbers are clamped, not refused.
	e.do(t, "POST", cv+"/read", a.Token, `{"seq":9223372036854775807}`).ok(t, 204, nil)
	if p := e.page(t, a, conv.ID, "?after_seq=9223372036854775806&limit=9223372036854775807"); len(p.Events) != 0 {
		t.Fatalf("page past the end: %v", p.seqs())
	}
	if p := e.page(t, a, conv.ID, "?before_seq=0"); len(p.Events) != 0 {
		t.Fatalf("page before 0: %v", p.seqs())
	}
	if got := e.count(t, "events"); got != before["events"] {
		t.Fatalf("hostile requests stored events: %d -> %d", before["events"], got)
	}
	if n := e.count(t, "users"); n != 3 {
		t.Fatalf("%d users, want 3", n)
	}
	e.do(t, "GET", "/v1/me", a.Token, nil).ok(t, 200, nil) // still serving
}
