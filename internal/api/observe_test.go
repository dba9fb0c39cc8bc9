package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/internal/wiring"
)

// REST requests are counted and timed by route pattern and status (never
// by raw path: no conversation id reaches /metrics), rate-limit refusals
// by limit, and with CHAT_ACCESS_LOG on each request is one log line with
// method, route, status, duration and bytes, and nothing secret.
func TestRequestMetricsAndAccessLog(t *testing.T) {
	var buf testenv.LogBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := testenv.Config(t)
	cfg.RateLimits = true
	cfg.LoginFailuresPerUser = 2
	cfg.AccessLog = true
	a, err := wiring.Start(context.Background(), cfg, log, wiring.API, wiring.Sequencer, wiring.Projector)
	if err != nil {
		t.Fatalf("start system: %v", err)
	}
	t.Cleanup(func() { _ = a.Stop() })
	e := &env{base: "http://" + a.Addr, pool: a.Pool, cfg: cfg, client: &http.Client{Timeout: 30 * time.Second}}

	alice := e.register(t, "alice")
	conv := e.createConv(t, alice, "group", "g").ID
	e.do(t, "GET", "/v1/conversations/"+conv, alice.Token, nil).ok(t, http.StatusOK, nil)
	const wrong = "Wr0ng-guess-passw0rd"
	for range 2 {
		e.do(t, "POST", "/v1/sessions", "", map[string]string{"username": "alice", "password": wrong}).fails(t, http.StatusUnauthorized, "unauthorized")
	}
	limited(t, e.do(t, "POST", "/v1/sessions", "", map[string]string{"username": "alice", "password": wrong}))
	e.do(t, "GET", "/v1/no/such/call", alice.Token, nil).fails(t, http.StatusNotFound, "not_found")

	res, err := http.Get(e.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	metrics := string(b)
	for _, want := range []string{
		`chat_http_requests_total{method="POST",route="/v1/users",status="201"} 1`,
		`chat_http_requests_total{method="POST",route="/v1/sessions",status="200"} 1`,
		`chat_http_requests_total{method="POST",route="/v1/sessions",status="401"} 2`,
		`chat_http_requests_total{method="POST",route="/v1/sessions",status="429"} 1`,
		`chat_http_requests_total{method="GET",route="/v1/conversations/{id}",status="200"} 1`,
		`chat_http_requests_total{method="GET",route="/v1/",status="404"} 1`,
		`chat_http_request_duration_seconds_count{method="POST",route="/v1/sessions"} 4`,
		`chat_http_request_duration_seconds_bucket{method="POST",route="/v1/conversations",le="+Inf"} 1`,
		`chat_rate_limited_total{limit="login_failures_per_user"} 1`,
	} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(metrics, conv) || strings.Contains(metrics, "/v1/no/such") {
		t.Errorf("/metrics holds a raw path")
	}

	type line struct {
		Msg, Log, Method, Route string
		Status                  int
		Bytes                   int64
		DurationMS              *float64 `json:"duration_ms"`
	}
	var access []line
	logs := buf.String()
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		var v line
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if v.Log == "access" {
			access = append(access, v)
		}
	}
	// register (2 calls), create, get, 3 logins, the unknown call.
	if len(access) != 8 {
		t.Fatalf("%d access lines, want 8:\n%s", len(access), logs)
	}
	found := false
	for _, l := range access {
		if l.Msg != "request" || l.Method == "" || l.Route == "" || l.Status == 0 || l.DurationMS == nil {
			t.Errorf("incomplete access line %+v", l)
		}
		if l.Method == "GET" && l.Route == "/v1/conversations/{id}" && l.Status == 200 && l.Bytes > 0 {
			found = true
		}
	}
	if !found {
		t.Errorf("no access line for GET /v1/conversations/{id} 200 with its bytes:\n%s", logs)
	}
	sig := alice.Token[strings.LastIndex(alice.Token, ".")+1:]
	for name, secret := range map[string]string{"token": sig, "password": "password-alice", "wrong password": wrong} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs hold the %s", name)
		}
	}
	for _, l := range access {
		if strings.Contains(l.Route, conv) {
			t.Errorf("an access line holds a raw path: %+v", l)
		}
	}
}
