package edge_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/internal/wiring"
)

// pushed is a receipt or presence frame.
type pushed struct {
	Type   string `json:"type"`
	Conv   string `json:"conv"`
	User   string `json:"user"`
	Seq    int64  `json:"seq"`
	Online bool   `json:"online"`
}

// rawClient reads frames as raw JSON, so a test sees every field.
type rawClient struct {
	t      *testing.T
	ws     *websocket.Conn
	frames chan []byte
	err    chan error
}

func dialRaw(t *testing.T, addr, token string, header http.Header) (*rawClient, *http.Response, error) {
	t.Helper()
	u := url.URL{Scheme: "ws", Host: addr, Path: "/v1/ws", RawQuery: "token=" + url.QueryEscape(token)}
	ws, resp, err := websocket.DefaultDialer.Dial(u.String(), header)
	if err != nil {
		return nil, resp, err
	}
	c := &rawClient{t: t, ws: ws, frames: make(chan []byte, 10000), err: make(chan error, 1)}
	go func() {
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				c.err <- err
				close(c.frames)
				return
			}
			c.frames <- b
		}
	}()
	t.Cleanup(func() { ws.Close() })
	return c, resp, nil
}

func mustDial(t *testing.T, addr, token string) *rawClient {
	t.Helper()
	c, resp, err := dialRaw(t, addr, token, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (%d)", addr, err, status)
	}
	return c
}

func (c *rawClient) send(v any) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next returns the next frame of one of types, skipping events; it fails
// the test after d.
func (c *rawClient) next(d time.Duration, types ...string) (pushed, []byte) {
	c.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case b, ok := <-c.frames:
			if !ok {
				c.t.Fatalf("connection ended: %v", <-c.err)
			}
			var p pushed
			_ = json.Unmarshal(b, &p)
			for _, ty := range types {
				if p.Type == ty {
					return p, b
				}
			}
		case <-deadline:
			c.t.Fatalf("no %v frame within %v", types, d)
		}
	}
}

// quiet checks that no frame of one of types arrives before the pong of a
// ping sent after wait (frames from other edges may take a moment).
func (c *rawClient) quiet(wait time.Duration, types ...string) {
	c.t.Helper()
	time.Sleep(wait)
	id := fmt.Sprintf("q%d", time.Now().UnixNano())
	c.send(map[string]string{"type": "ping", "id": id})
	for {
		_, b := c.next(15*time.Second, append([]string{"pong"}, types...)...)
		var p struct{ Type, ID string }
		_ = json.Unmarshal(b, &p)
		if p.Type == "pong" && p.ID == id {
			return
		}
		if p.Type != "pong" {
			c.t.Fatalf("unexpected frame %s", b)
		}
	}
}

// closed waits for the server to close the connection and returns its code.
func (c *rawClient) closed(d time.Duration) int {
	c.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case _, ok := <-c.frames:
			if !ok {
				err := <-c.err
				var ce *websocket.CloseError
				if e, ok := err.(*websocket.CloseError); ok {
					ce = e
					return ce.Code
				}
				return -1
			}
		case <-deadline:
			c.t.Fatalf("connection still open after %v", d)
		}
	}
}

func (s *system) unreadTotal(u user) int64 {
	s.t.Helper()
	var r struct {
		Total int64 `json:"total"`
	}
	if code := s.do("GET", "/v1/unread", u.token, nil, &r); code != 200 {
		s.t.Fatalf("unread: %d", code)
	}
	return r.Total
}

func (s *system) login(name string) string {
	s.t.Helper()
	var r struct {
		Token string `json:"token"`
	}
	if code := s.do("POST", "/v1/sessions", "", map[string]string{"username": name, "password": "password1"}, &r); code != 200 {
		s.t.Fatalf("login %s: %d", name, code)
	}
	return r.Token
}

// A read on one device: the count drops for every device of the reader
// (GET /v1/unread), the reader's other devices and the other member of the
// direct conversation get a receipt frame, the reading connection gets only
// its ack; a read over REST reaches every device. In a group only the
// reader's own devices hear of it.
func TestReceiptFrames(t *testing.T) {
	t.Parallel()
	s := start(t)
	a, b, c := s.user("alice"), s.user("bob"), s.user("carol")
	conv := s.direct(a, b)
	var group struct{ ID string }
	if code := s.do("POST", "/v1/conversations", a.token, map[string]any{"kind": "group", "title": "g", "members": []string{b.id, c.id}}, &group); code != 201 {
		t.Fatalf("create group: %d", code)
	}
	a2tok := s.login("alice")
	a1, a2 := mustDial(t, s.main.Addr, a.token), mustDial(t, s.edge.Addr, a2tok)
	b1, c1 := mustDial(t, s.main.Addr, b.token), mustDial(t, s.edge.Addr, c.token)
	for i := range 5 {
		if code := s.do("POST", "/v1/conversations/"+conv+"/messages", b.token, map[string]any{"id": fmt.Sprintf("d%d", i), "body": "x"}, nil); code != 200 {
			t.Fatalf("send: %d", code)
		}
		if code := s.do("POST", "/v1/conversations/"+group.ID+"/messages", b.token, map[string]any{"id": fmt.Sprintf("g%d", i), "body": "x"}, nil); code != 200 {
			t.Fatalf("send: %d", code)
		}
	}
	testenv.Eventually(t, 30*time.Second, "unread counts", func() bool { return s.unreadTotal(a) == 10 })

	a1.send(map[string]any{"type": "read", "id": "r1", "conv": conv, "seq": 3})
	if _, f := a1.next(30*time.Second, "ack", "error"); !strings.Contains(string(f), `"ack"`) {
		t.Fatalf("read: %s", f)
	}
	if got := s.unreadTotal(a); got != 7 {
		t.Fatalf("after reading 3: unread %d, want 7", got)
	}
	want := pushed{Type: "receipt", Conv: conv, User: a.id, Seq: 3}
	for name, cl := range map[string]*rawClient{"alice's other device": a2, "bob": b1} {
		if got, raw := cl.next(30*time.Second, "receipt"); got != want {
			t.Fatalf("%s: got %s, want %+v", name, raw, want)
		} else if err := exactKeys(raw, "type", "conv", "user", "seq"); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	a1.quiet(200*time.Millisecond, "receipt") // the reading connection has its ack
	c1.quiet(0, "receipt")                    // not in this conversation

	// A read that moves nothing sends nothing.
	a1.send(map[string]any{"type": "read", "id": "r2", "conv": conv, "seq": 2})
	a1.next(30*time.Second, "ack")
	a2.quiet(200*time.Millisecond, "receipt")

	// Over REST every device of the reader hears of it.
	if code := s.do("POST", "/v1/conversations/"+conv+"/read", a.token, map[string]int64{"seq": 5}, nil); code != 204 {
		t.Fatalf("read: %d", code)
	}
	want.Seq = 5
	for name, cl := range map[string]*rawClient{"alice 1": a1, "alice 2": a2, "bob": b1} {
		if got, raw := cl.next(30*time.Second, "receipt"); got != want {
			t.Fatalf("%s: got %s, want %+v", name, raw, want)
		}
	}
	if got := s.unreadTotal(a); got != 5 {
		t.Fatalf("after reading the direct conversation: unread %d, want 5", got)
	}

	// A group: alice's other device, nobody else.
	a2.send(map[string]any{"type": "read", "id": "r3", "conv": group.ID, "seq": 5})
	a2.next(30*time.Second, "ack")
	if got, raw := a1.next(30*time.Second, "receipt"); got != (pushed{Type: "receipt", Conv: group.ID, User: a.id, Seq: 5}) {
		t.Fatalf("alice 1: %s", raw)
	}
	b1.quiet(200*time.Millisecond, "receipt")
	c1.quiet(0, "receipt")
	if got := s.unreadTotal(a); got != 0 {
		t.Fatalf("after reading everything: unread %d", got)
	}
}

func exactKeys(b []byte, keys ...string) error {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	if len(m) != len(keys) {
		return fmt.Errorf("%s: want exactly %v", b, keys)
	}
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			return fmt.Errorf("%s lacks %q", b, k)
		}
	}
	return nil
}

func (s *system) befriend(a, b user) {
	s.t.Helper()
	if code := s.do("PUT", "/v1/friends/"+b.id, a.token, nil, nil); code != 204 {
		s.t.Fatalf("befriend: %d", code)
	}
}

func (s *system) online(u user, friend string) bool {
	s.t.Helper()
	var r struct {
		Friends []struct {
			ID     string `json:"id"`
			Online bool   `json:"online"`
		} `json:"friends"`
	}
	if code := s.do("GET", "/v1/friends", u.token, nil, &r); code != 200 {
		s.t.Fatalf("friends: %d", code)
	}
	for _, f := range r.Friends {
		if f.ID == friend {
			return f.Online
		}
	}
	s.t.Fatalf("%s is no friend", friend)
	return false
}

// Two devices on two edges: a friend gets online once when the first opens
// and offline once when the last closes; a stranger gets nothing.
func TestPresenceFrames(t *testing.T) {
	t.Parallel()
	s := start(t)
	a, b, c := s.user("alice"), s.user("bob"), s.user("carol")
	s.befriend(b, a)
	bob, carol := mustDial(t, s.main.Addr, b.token), mustDial(t, s.edge.Addr, c.token)
	// bob's own connection went to alice's friends; alice has none online.
	if s.online(b, a.id) {
		t.Fatal("alice online before connecting")
	}

	a1 := mustDial(t, s.main.Addr, a.token)
	if got, raw := bob.next(30*time.Second, "presence"); got != (pushed{Type: "presence", User: a.id, Online: true}) {
		t.Fatalf("first connection: %s", raw)
	} else if err := exactKeys(raw, "type", "user", "online"); err != nil {
		t.Fatal(err)
	}
	if !s.online(b, a.id) {
		t.Fatal("friends list: alice offline while connected")
	}
	a2 := mustDial(t, s.edge.Addr, s.login("alice"))
	bob.quiet(300*time.Millisecond, "presence")
	a1.ws.Close()
	bob.quiet(300*time.Millisecond, "presence")
	if !s.online(b, a.id) {
		t.Fatal("friends list: alice offline with one device left")
	}
	a2.ws.Close()
	if got, raw := bob.next(30*time.Second, "presence"); got != (pushed{Type: "presence", User: a.id, Online: false}) {
		t.Fatalf("last connection closed: %s", raw)
	}
	bob.quiet(300*time.Millisecond, "presence")
	if s.online(b, a.id) {
		t.Fatal("friends list: alice online after her last connection closed")
	}
	carol.quiet(0, "presence")
	// And again: the transitions repeat.
	a3 := mustDial(t, s.edge.Addr, a.token)
	if got, _ := bob.next(30*time.Second, "presence"); !got.Online {
		t.Fatal("reconnect: want online")
	}
	a3.ws.Close()
	if got, _ := bob.next(30*time.Second, "presence"); got.Online {
		t.Fatal("close: want offline")
	}
}

// childEnv is how a child process's configuration travels: CHAT_* variables.
func childEnv(cfg config.Config, id string) []string {
	rl := "off"
	if cfg.RateLimits {
		rl = "on"
	}
	return append(os.Environ(),
		"SEQCHAT_EDGE_CHILD=1",
		"CHAT_HTTP_ADDR=127.0.0.1:0", "CHAT_INSTANCE_ID="+id,
		"CHAT_POSTGRES_URL="+cfg.PostgresURL, "CHAT_REDIS_URL="+cfg.RedisURL, "CHAT_REDIS_PREFIX="+cfg.RedisPrefix,
		"CHAT_NATS_URL="+cfg.NATSURL, "CHAT_DATA_DIR="+cfg.DataDir, "CHAT_TOKEN_SECRET="+cfg.TokenSecret,
		"CHAT_STREAM_STORAGE="+cfg.StreamStorage, "CHAT_LEASE_TTL="+cfg.LeaseTTL.String(),
		"CHAT_PRESENCE_HEARTBEAT="+cfg.PresenceHeartbeat.String(), "CHAT_RATE_LIMITS="+rl)
}

// TestEdgeChild is the body of a child edge process (see
// TestPresenceEdgeKilled); it does nothing in a normal run.
func TestEdgeChild(t *testing.T) {
	if os.Getenv("SEQCHAT_EDGE_CHILD") != "1" {
		t.Skip("only run as a child process")
	}
	cfg, err := config.Load(nil, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	a, err := wiring.Start(context.Background(), cfg, slog.New(slog.DiscardHandler), wiring.Edge)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("ADDR=%s\n", a.Addr)
	select {} // until SIGKILL
}

// An edge process SIGKILLed while holding a user's only connection: its
// friends see the user go offline within two heartbeat periods, once.
func TestPresenceEdgeKilled(t *testing.T) {
	t.Parallel()
	// The requirement is relative to the heartbeat: offline within two of
	// them. The server's own design takes at most 1.375 heartbeats from
	// the last refresh (see activity.PresenceTTL), so the rest of
	// the bound is what the announcement needs to reach bob (Redis, NATS,
	// the edge's writer). At 3 s that margin is over 1.8 s, and a refresh
	// has 750 ms to land (it must, or alice would go offline while her
	// edge lives): enough on a loaded machine, where 500 ms (1 s bound,
	// 125 ms for a refresh) was not.
	const heartbeat = 3 * time.Second
	s := startWith(t, func(c *config.Config) { c.PresenceHeartbeat = heartbeat })
	a, b := s.user("alice"), s.user("bob")
	s.befriend(b, a)
	bob := mustDial(t, s.main.Addr, b.token)

	cmd := exec.Command(os.Args[0], "-test.run=^TestEdgeChild$", "-test.timeout=5m")
	cmd.Env = childEnv(s.cfg, "killed")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "ADDR="); ok {
				addr <- v
			}
		}
		io.Copy(io.Discard, out)
	}()
	var childAddr string
	select {
	case childAddr = <-addr:
	case <-time.After(30 * time.Second):
		t.Fatal("child edge did not start")
	}
	_ = mustDial(t, childAddr, a.token)
	if got, _ := bob.next(30*time.Second, "presence"); !got.Online {
		t.Fatal("want online")
	}
	// Let a few heartbeats pass: the entry is being refreshed.
	time.Sleep(2 * heartbeat)
	if !s.online(b, a.id) {
		t.Fatal("alice offline while her edge lives")
	}
	killed := time.Now()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	got, _ := bob.next(30*time.Second, "presence")
	took := time.Since(killed)
	if got.Online || got.User != a.id {
		t.Fatalf("want alice offline, got %+v", got)
	}
	t.Logf("offline %v after SIGKILL (heartbeat %v)", took, heartbeat)
	if took > 2*heartbeat {
		t.Fatalf("offline after %v, want within two heartbeats (%v)", took, 2*heartbeat)
	}
	if s.online(b, a.id) {
		t.Fatal("friends list: alice still online")
	}
	bob.quiet(2*heartbeat, "presence") // once, not once per sweeper
}

// Logout closes the sockets of that session on every edge at once, refuses
// its token on every api and edge (also one started afterwards), and leaves
// the user's other session alone.
func TestLogoutEverywhere(t *testing.T) {
	t.Parallel()
	s := start(t)
	a := s.user("alice")
	other := s.login("alice")
	api2cfg := s.cfg
	api2cfg.InstanceID, api2cfg.HTTPAddr = "api2", "127.0.0.1:0"
	api2, err := wiring.Start(context.Background(), api2cfg, testenv.Logger(t), wiring.API)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = api2.Stop() })
	me := func(addr, tok string) int {
		req, _ := http.NewRequest("GET", "http://"+addr+"/v1/me", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if me(api2.Addr, a.token) != 200 {
		t.Fatal("token refused before logout")
	}
	c1, c2 := mustDial(t, s.main.Addr, a.token), mustDial(t, s.edge.Addr, a.token)
	keep := mustDial(t, s.edge.Addr, other)

	if code := s.do("DELETE", "/v1/sessions/current", a.token, nil, nil); code != 204 {
		t.Fatalf("logout: %d", code)
	}
	// "At once": the other replica refuses it right after the answer.
	if code := me(api2.Addr, a.token); code != 401 {
		t.Fatalf("other api replica after logout: %d", code)
	}
	if code := me(s.main.Addr, a.token); code != 401 {
		t.Fatalf("api after logout: %d", code)
	}
	for name, c := range map[string]*rawClient{"edge 1": c1, "edge 2": c2} {
		if code := c.closed(15 * time.Second); code != websocket.ClosePolicyViolation {
			t.Fatalf("%s: closed with %d, want %d", name, code, websocket.ClosePolicyViolation)
		}
	}
	for _, addr := range []string{s.main.Addr, s.edge.Addr} {
		if _, resp, err := dialRaw(t, addr, a.token, nil); err == nil || resp == nil || resp.StatusCode != 401 {
			t.Fatalf("dial %s with a revoked token: %v %v", addr, err, resp)
		}
	}
	// The other session works on REST and its socket stays open.
	if me(api2.Addr, other) != 200 || me(s.main.Addr, other) != 200 {
		t.Fatal("the other session was refused")
	}
	keep.quiet(0)
	// A replica started after the logout loads it from Postgres.
	cfg3 := s.cfg
	cfg3.InstanceID, cfg3.HTTPAddr = "e3", "127.0.0.1:0"
	e3, err := wiring.Start(context.Background(), cfg3, testenv.Logger(t), wiring.Edge, wiring.API)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e3.Stop() })
	if code := me(e3.Addr, a.token); code != 401 {
		t.Fatalf("new replica: %d", code)
	}
	if _, resp, err := dialRaw(t, e3.Addr, a.token, nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("dial a new edge with a revoked token: %v", err)
	}
}

// Browsers' Origin: the edge's own origin and the configured ones pass,
// others are refused before anything is recorded; clients that send no
// Origin are not browsers and pass.
func TestOriginCheck(t *testing.T) {
	t.Parallel()
	s := startWith(t, func(c *config.Config) { c.AllowedOrigins = "https://wiring.example, https://other.example" })
	a := s.user("alice")
	cases := []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{"http://" + s.main.Addr, true},
		{"https://wiring.example", true},
		{"https://other.example", true},
		{"https://evil.example", false},
		{"https://wiring.example.evil.example", false},
		{"null", false},
	}
	for _, c := range cases {
		h := http.Header{}
		if c.origin != "" {
			h.Set("Origin", c.origin)
		}
		cl, resp, err := dialRaw(t, s.main.Addr, a.token, h)
		if c.ok {
			if err != nil {
				t.Fatalf("origin %q refused: %v", c.origin, err)
			}
			cl.ws.Close()
			continue
		}
		if err == nil || resp == nil || resp.StatusCode != 403 {
			t.Fatalf("origin %q: want 403, got %v %v", c.origin, err, resp)
		}
	}
	// The default (no list): only the same origin.
	s2 := start(t)
	b := s2.user("bob")
	if _, resp, err := dialRaw(t, s2.main.Addr, b.token, http.Header{"Origin": {"https://wiring.example"}}); err == nil || resp.StatusCode != 403 {
		t.Fatalf("default: foreign origin accepted")
	}
	if _, _, err := dialRaw(t, s2.main.Addr, b.token, http.Header{"Origin": {"http://" + s2.main.Addr}}); err != nil {
		t.Fatalf("default: same origin refused: %v", err)
	}
}

// Commands per user across connections on two edges: the limit trips with
// rate_limited error frames and lifts with the next window.
func TestUserCommandLimit(t *testing.T) {
	t.Parallel()
	const window = 5 * time.Second
	s := startWith(t, func(c *config.Config) {
		c.RateLimits = true
		c.UserCommands, c.UserCommandWindow = 20, window
	})
	a, b := s.user("alice"), s.user("bob")
	conv := s.direct(a, b)
	c1, c2 := mustDial(t, s.main.Addr, a.token), mustDial(t, s.edge.Addr, s.login("alice"))
	ropt, err := redis.ParseURL(s.cfg.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(ropt)
	t.Cleanup(func() { rdb.Close() })
	win := func() int64 { return time.Now().UnixNano() / int64(window) }
	// nextWindow waits for the beginning of the next window (the limit's
	// windows are fixed slices of Unix time) and returns it.
	nextWindow := func() int64 {
		time.Sleep(window - time.Duration(time.Now().UnixNano()%int64(window)) + 50*time.Millisecond)
		return win()
	}
	answers := func(c *rawClient, prefix string, n int) (acks, limited int) {
		for i := range n {
			c.send(map[string]any{"type": "send", "id": fmt.Sprintf("%s%d", prefix, i), "conv": conv, "body": "x"})
		}
		for range n {
			f, raw := c.next(30*time.Second, "ack", "error")
			switch {
			case f.Type == "ack":
				acks++
			case strings.Contains(string(raw), `"rate_limited"`):
				limited++
			default:
				t.Fatalf("unexpected %s", raw)
			}
		}
		return
	}
	// refusals is the second edge's count of refused commands by this
	// limit, from its /metrics.
	refusals := func() int {
		res, err := http.Get("http://" + s.edge.Addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		m, _ := io.ReadAll(res.Body)
		res.Body.Close()
		const name = `chat_rate_limited_total{limit="user_commands"} `
		for _, line := range strings.Split(string(m), "\n") {
			if v, ok := strings.CutPrefix(line, name); ok {
				n, err := strconv.Atoi(v)
				if err != nil {
					t.Fatalf("/metrics: %q", line)
				}
				return n
			}
		}
		return 0
	}
	// The counts below hold within one window. A loaded machine may not
	// get through the commands before the window ends: then nothing can
	// be concluded and the test tries again with the next window (with new
	// ids, so that none is a resend).
	var prefix string
	for attempt := 1; ; attempt++ {
		if attempt > 5 {
			t.Fatal("no attempt fitted in one window")
		}
		prefix = fmt.Sprintf("t%d-", attempt)
		w := nextWindow()
		acks1, lim1 := answers(c1, prefix+"a", 15)
		// Edge 2 learns edge 1's count from Redis on its first command of
		// the window: wait for edge 1 to have flushed it there.
		key := fmt.Sprintf("%srl:%s:%d", s.cfg.RedisPrefix, a.id, w)
		for win() == w {
			if n, _ := rdb.Get(context.Background(), key).Int64(); n >= 15 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		before := refusals()
		acks2, lim2 := answers(c2, prefix+"b", 15)
		if win() != w {
			t.Logf("attempt %d did not fit in one window; again", attempt)
			continue
		}
		t.Logf("edge 1: %d acks, %d limited; edge 2: %d acks, %d limited", acks1, lim1, acks2, lim2)
		if acks1 != 15 || lim1 != 0 {
			t.Fatalf("within the limit: %d acks, %d limited", acks1, lim1)
		}
		if acks2 != 5 || lim2 != 10 {
			t.Fatalf("across connections: want 5 acks and 10 rate_limited, got %d and %d", acks2, lim2)
		}
		// The second edge counted its refusals by limit.
		if n := refusals() - before; n != 10 {
			t.Fatalf("the second edge's chat_rate_limited_total{limit=\"user_commands\"} grew by %d, want 10", n)
		}
		break
	}
	// Recovers in the next window (same ids: the client retries). Ten
	// commands are within the limit whichever windows they fall in.
	nextWindow()
	if acks, lim := answers(c2, prefix+"b", 10); lim != 0 || acks != 10 {
		t.Fatalf("next window: %d acks, %d limited", acks, lim)
	}
}

// A connection over its own command rate gets rate_limited error frames,
// and its edge counts them under connection_commands.
func TestConnectionCommandLimitCounted(t *testing.T) {
	t.Parallel()
	s := startWith(t, func(c *config.Config) {
		c.RateLimits = true
		c.CommandRate, c.CommandBurst = 0.01, 3 // three, then one per 100 s
	})
	a, b := s.user("alice"), s.user("bob")
	conv := s.direct(a, b)
	c := mustDial(t, s.main.Addr, a.token)
	const n = 8
	for i := range n {
		c.send(map[string]any{"type": "send", "id": fmt.Sprintf("c%d", i), "conv": conv, "body": "x"})
	}
	limited := 0
	for range n {
		f, raw := c.next(30*time.Second, "ack", "error")
		if f.Type == "error" {
			if !strings.Contains(string(raw), `"rate_limited"`) {
				t.Fatalf("unexpected %s", raw)
			}
			limited++
		}
	}
	if limited != n-3 {
		t.Fatalf("%d of %d refused, want %d", limited, n, n-3)
	}
	res, err := http.Get("http://" + s.main.Addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if want := fmt.Sprintf(`chat_rate_limited_total{limit="connection_commands"} %d`, n-3) + "\n"; !strings.Contains(string(m), want) {
		t.Fatalf("/metrics lacks %s", want)
	}
}

// REST timeouts guard against slow clients without ending WebSockets.
func TestServerTimeouts(t *testing.T) {
	t.Parallel()
	// Short enough to see them act, long enough that a loaded machine
	// serves the well-behaved requests below within them.
	const timeout = time.Second
	s := startWith(t, func(c *config.Config) {
		c.HTTPReadTimeout, c.HTTPWriteTimeout = timeout, timeout
	})
	a := s.user("alice")
	ws := mustDial(t, s.main.Addr, a.token)
	// A body that dribbles: cut off at the read deadline.
	conn, err := net.Dial("tcp", s.main.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user")
	// The server answers or closes; how soon is the server's read timeout,
	// not something to measure here: that it does not hold the connection
	// (until our own far deadline) is the point.
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("slow body held the connection for 30 s (read timeout %v)", timeout)
	}
	if len(resp) > 0 && !strings.Contains(string(resp), " 400 ") && !strings.Contains(string(resp), " 408 ") {
		t.Fatalf("slow body: %q", resp)
	}
	// Headers over the limit: 431.
	req, _ := http.NewRequest("GET", "http://"+s.main.Addr+"/v1/me", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("huge header: %v %v", r, err)
	}
	// The WebSocket outlives both timeouts several times over.
	time.Sleep(3 * timeout)
	ws.quiet(0)
}
