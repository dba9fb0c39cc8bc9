package hooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/internal/projector/hooks"
	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/internal/wiring"
	"github.com/seqchat/seqchat/timeline"
)

const (
	serverKey = "hooks-test-server-key-0123456789"
	secret    = "hooks-test-secret"
)

// receiver is a webhook or push receiver that checks every signature and
// answers with status(n) for its nth request (from 1).
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	status func(n int) int
	delay  atomic.Int64 // nanoseconds each request waits

	mu       sync.Mutex
	requests int
	badSigs  int
	events   []json.RawMessage // accepted batches' events, in arrival order
	notes    []hooks.Notification
}

func newReceiver(t *testing.T, status func(n int) int) *receiver {
	r := &receiver{t: t, status: status}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	time.Sleep(time.Duration(r.delay.Load()))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if req.Header.Get("Content-Type") != "application/json" || !hooks.Verify([]byte(secret), body, req.Header.Get(hooks.SignatureHeader)) {
		r.badSigs++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	st := http.StatusOK
	if r.status != nil {
		st = r.status(r.requests)
	}
	if st == http.StatusOK {
		var b struct {
			Events        []json.RawMessage    `json:"events"`
			Notifications []hooks.Notification `json:"notifications"`
		}
		if err := json.Unmarshal(body, &b); err != nil {
			r.t.Errorf("receiver: %v in %s", err, body)
		}
		r.events = append(r.events, b.Events...)
		r.notes = append(r.notes, b.Notifications...)
	}
	w.WriteHeader(st)
}

func (r *receiver) got() ([]json.RawMessage, []hooks.Notification, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]json.RawMessage(nil), r.events...), append([]hooks.Notification(nil), r.notes...), r.badSigs
}

// system is api and sequencer (and, unless asked otherwise, projector and
// edge) in one process.
type system struct {
	t      *testing.T
	cfg    config.Config
	sys    *wiring.System
	js     jetstream.JetStream
	client *http.Client
}

func startSystem(t *testing.T, change func(*config.Config), roles ...wiring.Role) *system {
	t.Helper()
	return startSystemLog(t, change, testenv.Logger(t), roles...)
}

// startSystemLog is startSystem logging to log.
func startSystemLog(t *testing.T, change func(*config.Config), log *slog.Logger, roles ...wiring.Role) *system {
	t.Helper()
	cfg := testenv.Config(t)
	cfg.ServerKeys = serverKey
	cfg.WebhookSecret = secret
	change(&cfg)
	if roles == nil {
		roles = wiring.AllRoles
	}
	a, err := wiring.Start(context.Background(), cfg, log, roles...)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = a.Stop() })
	return &system{t: t, cfg: cfg, sys: a, js: a.NATS.JS, client: &http.Client{Timeout: 30 * time.Second}}
}

// startRole starts another process of the same deployment.
func (s *system) startRole(roles ...wiring.Role) *wiring.System {
	s.t.Helper()
	cfg := s.cfg
	cfg.InstanceID = ""
	a, err := wiring.Start(context.Background(), cfg, testenv.Logger(s.t), roles...)
	if err != nil {
		s.t.Fatalf("start %v: %v", roles, err)
	}
	s.t.Cleanup(func() { _ = a.Stop() })
	return a
}

func (s *system) call(method, path, token string, body, out any) int {
	s.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, "http://"+s.sys.Addr+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := s.client.Do(req)
	if err != nil {
		s.t.Errorf("%s %s: %v", method, path, err)
		return 0
	}
	defer res.Body.Close()
	rb, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		s.t.Errorf("%s %s: %d %s", method, path, res.StatusCode, rb)
	} else if out != nil {
		_ = json.Unmarshal(rb, out)
	}
	return res.StatusCode
}

type user struct{ ID, Token string }

func (s *system) user(name string) user {
	var v struct {
		Token  string `json:"token"`
		UserID string `json:"user_id"`
	}
	s.call("POST", "/v1/server/sessions", serverKey, map[string]string{"username": name}, &v)
	return user{ID: v.UserID, Token: v.Token}
}

func (s *system) group(owner user, members ...user) string {
	ids := []string{}
	for _, m := range members {
		ids = append(ids, m.ID)
	}
	var c struct{ ID string }
	s.call("POST", "/v1/conversations", owner.Token, map[string]any{"kind": "group", "title": "g", "members": ids}, &c)
	return c.ID
}

func (s *system) send(u user, conv, id string, body any) int64 {
	var v struct{ Seq int64 }
	s.call("POST", "/v1/conversations/"+conv+"/messages", u.Token, map[string]any{"id": id, "body": body}, &v)
	return v.Seq
}

// waitConsumer waits until the durable consumer exists: events appended
// from then on are the URL's.
func (s *system) waitConsumer(name string) {
	s.t.Helper()
	testenv.Eventually(s.t, 30*time.Second, "consumer "+name, func() bool {
		_, err := s.js.Consumer(context.Background(), timeline.TimelineStream, name)
		return err == nil
	})
}

// timelineFrom reads TIMELINE from stream seq from on: each event's JSON as
// stored.
func (s *system) timelineFrom(from uint64) []json.RawMessage {
	s.t.Helper()
	ctx := context.Background()
	st, err := s.js.Stream(ctx, timeline.TimelineStream)
	if err != nil {
		s.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	var out []json.RawMessage
	for seq := max(from, info.State.FirstSeq); seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			s.t.Fatalf("get %d: %v", seq, err)
		}
		out = append(out, m.Data)
	}
	return out
}

func (s *system) lastStreamSeq() uint64 {
	st, err := s.js.Stream(context.Background(), timeline.TimelineStream)
	if err != nil {
		s.t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	return info.State.LastSeq
}

// busy sends n messages into each of convs from u, 16 at a time.
func (s *system) busy(u user, convs []string, n int, tag string) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for ci, c := range convs {
		for i := 0; i < n; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				s.send(u, c, fmt.Sprintf("%s-%d-%d", tag, ci, i), map[string]any{"text": "m", "i": i})
			}()
		}
	}
	wg.Wait()
}

// checkDelivered: the receiver got every event of want, byte for byte as
// TIMELINE holds it, each conversation's first copies in seq order.
func checkDelivered(t *testing.T, r *receiver, want []json.RawMessage) {
	t.Helper()
	type key struct {
		conv string
		seq  int64
	}
	wanted := map[key]string{}
	for _, w := range want {
		ev, _ := events.DecodeEvent(w)
		wanted[key{ev.Conv, ev.Seq}] = string(w)
	}
	testenv.Eventually(t, 60*time.Second, "every event at the webhook", func() bool {
		got, _, _ := r.got()
		seen := map[key]bool{}
		for _, g := range got {
			ev, _ := events.DecodeEvent(g)
			seen[key{ev.Conv, ev.Seq}] = true
		}
		for k := range wanted {
			if !seen[k] {
				return false
			}
		}
		return true
	})
	got, _, bad := r.got()
	if bad > 0 {
		t.Fatalf("%d requests with a bad signature", bad)
	}
	last := map[string]int64{}
	seen := map[key]bool{}
	for _, g := range got {
		ev, err := events.DecodeEvent(g)
		if err != nil {
			t.Fatalf("undecodable event %s", g)
		}
		k := key{ev.Conv, ev.Seq}
		if w, ok := wanted[k]; ok && w != string(g) {
			t.Fatalf("event differs from TIMELINE:\n got %s\nwant %s", g, w)
		}
		if seen[k] {
			continue // a redelivery: allowed (at least once)
		}
		seen[k] = true
		if ev.Seq <= last[ev.Conv] {
			t.Fatalf("conv %s: seq %d arrived after %d", ev.Conv, ev.Seq, last[ev.Conv])
		}
		last[ev.Conv] = ev.Seq
	}
}

func TestWebhookGetsEveryEventInOrder(t *testing.T) {
	var r *receiver
	failing := newReceiver(t, func(int) int { return http.StatusInternalServerError })
	r = newReceiver(t, nil)
	s := startSystem(t, func(c *config.Config) { c.WebhookURLs = r.srv.URL + "/hook?token=x, " + failing.srv.URL })
	s.waitConsumer(hooks.ConsumerName(r.srv.URL + "/hook?token=x"))
	from := s.lastStreamSeq() + 1
	a, b, c := s.user("alice"), s.user("bob"), s.user("carol")
	convs := []string{s.group(a, b), s.group(a, c), s.group(a, b, c)}
	s.busy(a, convs, 150, "m")
	want := s.timelineFrom(from)
	if len(want) < 450 {
		t.Fatalf("only %d events in TIMELINE", len(want))
	}
	// The failing URL holds up neither this one nor the rest.
	checkDelivered(t, r, want)
	if failing.requests == 0 {
		t.Fatal("the failing URL was never tried")
	}
}

func TestWebhookReceiverDownForAWhile(t *testing.T) {
	var mu sync.Mutex
	down := true
	r := newReceiver(t, func(int) int {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	s := startSystem(t, func(c *config.Config) { c.WebhookURLs = r.srv.URL })
	s.waitConsumer(hooks.ConsumerName(r.srv.URL))
	from := s.lastStreamSeq() + 1
	a, b := s.user("alice"), s.user("bob")
	conv := s.group(a, b)
	s.busy(a, []string{conv}, 100, "m")
	testenv.Eventually(t, 20*time.Second, "a few refused attempts", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.requests >= 4
	})
	s.busy(a, []string{conv}, 100, "n")
	mu.Lock()
	down = false
	mu.Unlock()
	checkDelivered(t, r, s.timelineFrom(from))
}

func TestWebhookSurvivesProjectorRestart(t *testing.T) {
	r := newReceiver(t, nil)
	r.delay.Store(int64(200 * time.Millisecond)) // slow enough to stop it mid-delivery
	// The api, sequencer and edge here; projectors in processes of their own.
	s := startSystem(t, func(c *config.Config) { c.WebhookURLs = r.srv.URL; c.ProjectorBatch = 10 }, wiring.API, wiring.Sequencer, wiring.Edge)
	p1 := s.startRole(wiring.Projector)
	s.waitConsumer(hooks.ConsumerName(r.srv.URL))
	from := s.lastStreamSeq() + 1
	a, b := s.user("alice"), s.user("bob")
	convs := []string{s.group(a, b), s.group(b, a)}
	s.busy(a, convs, 150, "m")
	testenv.Eventually(t, 20*time.Second, "delivery under way", func() bool {
		got, _, _ := r.got()
		return len(got) >= 30
	})
	if err := p1.Stop(); err != nil {
		t.Fatal(err)
	}
	got, _, _ := r.got()
	if n := len(s.timelineFrom(from)); len(got) >= n {
		t.Fatalf("everything (%d events) was delivered before the projector stopped", n)
	}
	s.busy(a, convs, 50, "n")
	r.delay.Store(0)
	s.startRole(wiring.Projector)
	checkDelivered(t, r, s.timelineFrom(from))
}

// dialWS opens a socket and waits until it is served.
func dialWS(t *testing.T, addr, token string) *websocket.Conn {
	t.Helper()
	u := url.URL{Scheme: "ws", Host: addr, Path: "/v1/ws", RawQuery: "token=" + url.QueryEscape(token)}
	ws, _, err := websocket.DefaultDialer.Dial(u.String(), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { ws.Close() })
	_ = ws.WriteJSON(map[string]string{"type": "ping", "id": "p"})
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var f struct{ Type string }
		if err := ws.ReadJSON(&f); err != nil {
			t.Fatalf("read: %v", err)
		}
		if f.Type == "pong" {
			break
		}
	}
	// Keep reading so the edge never takes it for a slow consumer.
	go func() {
		_ = ws.SetReadDeadline(time.Time{})
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	return ws
}

func TestOfflinePush(t *testing.T) {
	t.Run("projectors from TIMELINE", func(t *testing.T) {
		r := newReceiver(t, offlineAnswers)
		testOfflinePush(t, r, startSystem(t, func(c *config.Config) { c.PushURL = r.srv.URL }))
	})
	// In one process with the embedded JetStream the unread projection is
	// fed by the sequencer and has no consumer: the push waits on its feed
	// (a wait on the consumer would time out, and say so, for every batch).
	t.Run("one process, projections fed in memory", func(t *testing.T) {
		r := newReceiver(t, offlineAnswers)
		var logs testenv.LogBuffer
		s := startSystemLog(t, func(c *config.Config) {
			c.PushURL, c.NATSURL, c.StreamStorage = r.srv.URL, "", "file"
		}, slog.New(slog.NewTextHandler(&logs, nil)))
		testOfflinePush(t, r, s)
		if strings.Contains(logs.String(), "unread projection lags") {
			t.Fatalf("the push waited out the unread projection:\n%s", logs.String())
		}
	})
}

// offlineAnswers is the push receiver's answers: two failures first
// (retried, not lost), then success.
func offlineAnswers(n int) int {
	if n <= 2 {
		return http.StatusServiceUnavailable
	}
	return http.StatusOK
}

func testOfflinePush(t *testing.T, r *receiver, s *system) {
	s.waitConsumer(hooks.OfflineConsumer)
	alice, bob, carol, dave := s.user("alice"), s.user("bob"), s.user("carol"), s.user("dave")
	c1 := s.group(alice, bob, carol, dave)
	c2 := s.group(alice, carol)
	dialWS(t, s.sys.Addr, bob.Token) // bob is online; alice too, but she sends
	dialWS(t, s.sys.Addr, alice.Token)

	type want struct {
		user, conv  string
		seq, unread int64
	}
	check := func(expect []want) {
		t.Helper()
		testenv.Eventually(t, 30*time.Second, "notifications", func() bool {
			_, notes, _ := r.got()
			return len(notes) >= len(expect)
		})
		time.Sleep(300 * time.Millisecond) // anything extra would be in flight
		_, notes, bad := r.got()
		if bad > 0 {
			t.Fatalf("%d bad signatures", bad)
		}
		got := map[want]int{}
		for _, n := range notes {
			got[want{n.User, n.Conv, n.Seq, n.Unread}]++
			if n.From != alice.ID || len(n.Body) == 0 {
				t.Fatalf("notification %+v", n)
			}
		}
		for _, e := range expect {
			if got[e] == 0 {
				t.Fatalf("missing %+v in %+v", e, notes)
			}
			delete(got, e)
		}
		if len(got) > 0 {
			t.Fatalf("unexpected notifications %+v (online members, the sender, or a wrong badge)", got)
		}
	}
	// A badge is the user's unread total when the notification is made,
	// this message included: the second message is sent once the first
	// one's notification is out, or the first badge could count both.
	s2 := s.send(alice, c2, "a1", map[string]string{"text": "one"})
	expect := []want{{carol.ID, c2, s2, 1}}
	check(expect)
	s1 := s.send(alice, c1, "a2", map[string]string{"text": "two"})
	expect = append(expect, want{carol.ID, c1, s1, 2}, want{dave.ID, c1, s1, 1})
	check(expect)

	// carol reads c2: her next badge no longer counts it. dave read c1
	// before the message arrives: the badge is his without it... and he is
	// notified of the new one only.
	var n int
	s.call("POST", "/v1/conversations/"+c2+"/read", carol.Token, map[string]int64{"seq": s2}, nil)
	testenv.Eventually(t, 30*time.Second, "carol's read applied", func() bool {
		var u struct{ Total int64 }
		s.call("GET", "/v1/unread", carol.Token, nil, &u)
		return u.Total == 1
	})
	s3 := s.send(alice, c1, "a3", map[string]string{"text": "three"})
	n = len(expect)
	expect = append(expect, want{carol.ID, c1, s3, 2}, want{dave.ID, c1, s3, 2})
	check(expect)
	if len(expect) != n+2 {
		t.Fatal("unreachable")
	}
}
