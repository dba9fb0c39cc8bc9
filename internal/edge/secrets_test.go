package edge_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/internal/wiring"
)

// A realistic flow, logged at debug level into a buffer, with failures on
// the way (wrong passwords, bad frames, a revoked token, a dropped edge):
// neither the logs nor /metrics hold a password, token or message body.
func TestNoSecretsInLogs(t *testing.T) {
	t.Parallel()
	var buf testenv.LogBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := testenv.Config(t)
	cfg.RateLimits = true
	cfg.AccessLog = true // the api's access log is in the logs checked
	cfg.InstanceID = "s1"
	main, err := wiring.Start(context.Background(), cfg, log, wiring.AllRoles...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = main.Stop() })
	s := &system{t: t, cfg: cfg, main: main, edge: main}

	const password, wrong = "Sup3r-secret-passw0rd", "Wr0ng-guess-passw0rd"
	const body, restBody = "the-secret-message-body-42", "another-secret-body-43"
	reg := func(name string) user {
		if code := s.do("POST", "/v1/users", "", map[string]string{"username": name, "password": password}, nil); code != 201 {
			t.Fatalf("register: %d", code)
		}
		var r struct {
			Token  string `json:"token"`
			UserID string `json:"user_id"`
		}
		if code := s.do("POST", "/v1/sessions", "", map[string]string{"username": name, "password": password}, &r); code != 200 {
			t.Fatalf("login: %d", code)
		}
		return user{id: r.UserID, token: r.Token}
	}
	a, b := reg("alice"), reg("bob")
	s.do("POST", "/v1/sessions", "", map[string]string{"username": "alice", "password": wrong}, nil)
	s.do("POST", "/v1/users", "", map[string]string{"username": "x", "password": password}, nil)
	conv := s.direct(a, b)
	ca, cb := mustDial(t, main.Addr, a.token), mustDial(t, main.Addr, b.token)
	// bob syncs, as a client does: without it his live events wait for the
	// first-sync wait (10 s), as long as the wait for them below.
	cb.send(map[string]any{"type": "sync", "id": "s1", "cursors": map[string]int64{}})
	cb.next(30*time.Second, "synced")
	ca.send(map[string]any{"type": "send", "id": "m1", "conv": conv, "body": map[string]string{"text": body}})
	ca.next(30*time.Second, "ack")
	cb.next(30*time.Second, "event")
	ca.send(map[string]any{"type": "send", "id": "bad id!", "conv": conv, "body": body}) // refused
	ca.send(map[string]any{"type": "nonsense", "body": body})
	ca.send(map[string]any{"type": "send", "id": "m2", "conv": "nope", "body": body})
	s.do("POST", "/v1/conversations/"+conv+"/messages", a.token, map[string]any{"id": "m3", "body": restBody}, nil)
	s.do("POST", "/v1/conversations/"+conv+"/messages", a.token, map[string]any{"id": "m4", "body": "{" + restBody}, nil)
	s.do("POST", "/v1/conversations/"+conv+"/read", b.token, map[string]any{"seq": 2}, nil)
	s.history(b, conv, 0)
	s.do("GET", "/v1/me?token="+a.token, "", nil, nil)
	s.do("GET", "/v1/me", a.token+"x", nil, nil)
	s.do("DELETE", "/v1/sessions/current", a.token, nil, nil)
	ca.closed(15 * time.Second)
	s.do("GET", "/v1/me", a.token, nil, nil)
	if _, _, err := dialRaw(t, main.Addr, a.token, nil); err == nil {
		t.Fatal("revoked token dialed")
	}
	cb.ws.Close()
	resp, err := http.Get("http://" + main.Addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_ = main.Stop()

	logs := buf.String()
	if !strings.Contains(logs, `"msg"`) {
		t.Fatal("nothing was logged: the test would prove nothing")
	}
	if !strings.Contains(logs, `"log":"access"`) || !strings.Contains(logs, `"route":"/v1/me"`) {
		t.Fatal("no access log lines: the test would not check them")
	}
	// A token's signature is what makes it a secret; its header part is the
	// same for every token.
	sig := func(tok string) string { return tok[strings.LastIndex(tok, ".")+1:] }
	for name, secret := range map[string]string{
		"password": password, "wrong password": wrong, "message body": body, "REST body": restBody,
		"alice's token": sig(a.token), "bob's token": sig(b.token),
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs hold the %s", name)
		}
		if strings.Contains(string(metrics), secret) {
			t.Errorf("/metrics holds the %s", name)
		}
	}
	if t.Failed() {
		t.Logf("logs:\n%s", logs)
	}
}
