package wiring_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/internal/wiring"
)

// logSink is the test's log buffer, read back as records.
type logSink struct{ testenv.LogBuffer }

// lines returns the records logged so far; a line that is not JSON fails t.
func (b *logSink) lines(t *testing.T) []map[string]any {
	t.Helper()
	text := b.String()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		if l == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("a log line that is not JSON: %q", l)
		}
		out = append(out, rec)
	}
	return out
}

func count(recs []map[string]any, match func(map[string]any) bool) int {
	n := 0
	for _, r := range recs {
		if match(r) {
			n++
		}
	}
	return n
}

// Redis down at start: the process says so once, clearly; go-redis's own
// lines arrive as JSON records and are throttled; the edge's presence
// sweep, failing every round, warns once, not every round.
func TestRedisDownAtStart(t *testing.T) {
	t.Parallel()
	closed := testenv.ClosedAddr(t)
	cfg := testenv.Config(t)
	cfg.RedisURL = "redis://" + closed + "/0"
	cfg.PresenceHeartbeat = 100 * time.Millisecond // sweeps every few tens of ms
	sink := &logSink{}
	log := slog.New(slog.NewJSONHandler(sink, nil))
	// Process-wide, as Main does; nothing else in this package's tests
	// logs through go-redis.
	wiring.RouteRedisLogs(log)
	a, err := wiring.Start(context.Background(), cfg, log, wiring.AllRoles...)
	if err != nil {
		t.Fatalf("start without Redis: %v", err)
	}
	t.Cleanup(func() { _ = a.Stop() })

	degraded := func(r map[string]any) bool {
		return r["level"] == "WARN" && strings.HasPrefix(fmt.Sprint(r["msg"]), "redis unreachable")
	}
	fromRedis := func(r map[string]any) bool { return r["component"] == "go-redis" }
	sweeps := func(r map[string]any) bool { return r["msg"] == "sweep presence" }
	testenv.Eventually(t, 15*time.Second, "the degraded warning and a go-redis record", func() bool {
		recs := sink.lines(t)
		return count(recs, degraded) > 0 && count(recs, fromRedis) > 0 && count(recs, sweeps) > 0
	})
	// Many sweep rounds later (a round every ~30 ms) nothing has repeated.
	time.Sleep(3 * time.Second)
	recs := sink.lines(t)
	if n := count(recs, degraded); n != 1 {
		t.Errorf("%d 'redis unreachable' warnings, want exactly 1", n)
	}
	for _, r := range recs {
		if degraded(r) {
			msg := fmt.Sprint(r["msg"])
			for _, says := range []string{"unread counts", "presence", "sending, acks, live delivery"} {
				if !strings.Contains(msg, says) {
					t.Errorf("the warning does not say %q: %s", says, msg)
				}
			}
		}
	}
	if n := count(recs, sweeps); n != 1 {
		t.Errorf("%d 'sweep presence' warnings in ~3s of failing sweeps, want 1", n)
	}
	perKind := map[string]int{}
	for _, r := range recs {
		if fromRedis(r) {
			perKind[strings.SplitN(fmt.Sprint(r["msg"]), ":", 2)[0]]++
		}
	}
	for kind, n := range perKind {
		if n > 1 {
			t.Errorf("go-redis %q logged %d times in ~3s, want once", kind, n)
		}
	}
	// And the process serves: /healthz answers, /readyz says why not.
	resp, err := http.Get("http://" + a.Addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
}

// A fresh install's first start builds the unread projection without
// warning that Redis lost it.
func TestFreshInstallBuildsUnreadQuietly(t *testing.T) {
	t.Parallel()
	cfg := testenv.Config(t)
	sink := &logSink{}
	log := slog.New(slog.NewJSONHandler(sink, nil))
	a, err := wiring.Start(context.Background(), cfg, log, wiring.AllRoles...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Stop() })
	base := "http://" + a.Addr
	post := func(path, token string, body any, out any) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", base+path, bytes.NewReader(b))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("POST %s: %d", path, resp.StatusCode)
		}
		if out != nil {
			_ = json.NewDecoder(resp.Body).Decode(out)
		}
	}
	var ids [2]string
	var token string
	for i, name := range []string{"fresh-a", "fresh-b"} {
		var u struct{ ID string }
		post("/v1/users", "", map[string]string{"username": name, "password": "password1"}, &u)
		ids[i] = u.ID
	}
	var s struct{ Token string }
	post("/v1/sessions", "", map[string]string{"username": "fresh-a", "password": "password1"}, &s)
	token = s.Token
	var conv struct{ ID string }
	post("/v1/conversations", token, map[string]any{"kind": "direct", "members": []string{ids[1]}}, &conv)
	post("/v1/conversations/"+conv.ID+"/messages", token, map[string]any{"id": "m1", "body": "hi"}, nil)
	built := func(r map[string]any) bool { return r["msg"] == "unread projection rebuilt" }
	testenv.Eventually(t, 15*time.Second, "the unread projection to be built", func() bool { return count(sink.lines(t), built) > 0 })
	for _, r := range sink.lines(t) {
		if strings.Contains(fmt.Sprint(r["msg"]), "Redis lost it") {
			t.Fatalf("a fresh install warns: %v", r)
		}
	}
}

// With Redis away the conversation list still answers (it is how a client
// learns its conversations and their last_seq), without unread counts;
// GET /v1/unread, which is nothing but counts, says unavailable.
func TestConversationListWithoutRedis(t *testing.T) {
	t.Parallel()
	closed := testenv.ClosedAddr(t)
	cfg := testenv.Config(t)
	cfg.RedisURL = "redis://" + closed + "/0"
	cfg.RateLimits = false // the failed-login limits live in Redis
	a, err := wiring.Start(context.Background(), cfg, slog.New(slog.DiscardHandler), wiring.AllRoles...)
	if err != nil {
		t.Fatalf("start without Redis: %v", err)
	}
	t.Cleanup(func() { _ = a.Stop() })
	base := "http://" + a.Addr
	call := func(method, path, token string, body any) (int, []byte) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(b))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out bytes.Buffer
		_, _ = out.ReadFrom(resp.Body)
		return resp.StatusCode, out.Bytes()
	}
	var ids [2]string
	for i, name := range []string{"away-a", "away-b"} {
		code, b := call("POST", "/v1/users", "", map[string]string{"username": name, "password": "password1"})
		var u struct{ ID string }
		if code != 201 || json.Unmarshal(b, &u) != nil {
			t.Fatalf("register %s: %d %s", name, code, b)
		}
		ids[i] = u.ID
	}
	code, b := call("POST", "/v1/sessions", "", map[string]string{"username": "away-a", "password": "password1"})
	var s struct{ Token string }
	if code != 200 || json.Unmarshal(b, &s) != nil {
		t.Fatalf("login: %d %s", code, b)
	}
	code, b = call("POST", "/v1/conversations", s.Token, map[string]any{"kind": "direct", "members": []string{ids[1]}})
	var conv struct{ ID string }
	if code != 201 || json.Unmarshal(b, &conv) != nil {
		t.Fatalf("create: %d %s", code, b)
	}
	code, b = call("GET", "/v1/conversations", s.Token, nil)
	var list struct {
		Conversations []map[string]any `json:"conversations"`
	}
	if code != 200 || json.Unmarshal(b, &list) != nil {
		t.Fatalf("GET /v1/conversations without Redis: %d %s", code, b)
	}
	if len(list.Conversations) != 1 || list.Conversations[0]["id"] != conv.ID {
		t.Fatalf("the list is %s, want the one conversation %s", b, conv.ID)
	}
	if _, has := list.Conversations[0]["unread"]; has {
		t.Errorf("an unread count without Redis: %s", b)
	}
	if _, has := list.Conversations[0]["last_seq"]; !has {
		t.Errorf("no last_seq: %s", b)
	}
	if code, b = call("GET", "/v1/unread", s.Token, nil); code != 503 {
		t.Errorf("GET /v1/unread without Redis: %d %s, want 503", code, b)
	}
}
