package wiring_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/seqchat/seqchat/internal/projector/fanout"
	"github.com/seqchat/seqchat/internal/projector/history"
	unreadprojector "github.com/seqchat/seqchat/internal/projector/unread"
	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/internal/wiring"
	"github.com/seqchat/seqchat/timeline"
)

// Each role boots alone against the real stores, as a split deployment
// runs them, and the four together serve a message end to end: the api
// registers and answers history, the edge takes the send and delivers it,
// the sequencer acks it, the projector counts it unread. A role that
// needed another in its own process, or wired something only the
// one-process mode wires, fails here.
func TestEachRoleBootsAlone(t *testing.T) {
	t.Parallel()
	cfg := testenv.Config(t)
	addr := map[wiring.Role]string{}
	for _, role := range wiring.AllRoles {
		s, err := wiring.Start(context.Background(), cfg, testenv.Logger(t).With("test-role", role), role)
		if err != nil {
			t.Fatalf("start %s alone: %v", role, err)
		}
		t.Cleanup(func() {
			if err := s.Stop(); err != nil {
				t.Errorf("stop %s: %v", role, err)
			}
		})
		addr[role] = "http://" + s.Addr
		if code, body := get(t, addr[role]+"/readyz", ""); code != http.StatusOK {
			t.Fatalf("%s alone: /readyz %d %s", role, code, body)
		}
	}
	api := addr[wiring.API]
	// Routes belong to their role: the edge serves no REST, the api no socket.
	if code, _ := get(t, addr[wiring.Edge]+"/v1/me", ""); code != http.StatusNotFound {
		t.Errorf("the edge alone answers /v1/me with %d, want 404", code)
	}

	alice, bob := signUp(t, api, "alice"), signUp(t, api, "bob")
	var conv struct{ ID string }
	call(t, "POST", api+"/v1/conversations", alice.token, fmt.Sprintf(`{"kind":"direct","members":[%q]}`, bob.id), &conv)

	toBob, toAlice := dialWS(t, addr[wiring.Edge], bob), dialWS(t, addr[wiring.Edge], alice)
	for _, c := range []*websocket.Conn{toBob, toAlice} {
		write(t, c, `{"type":"sync","id":"s1","cursors":{}}`)
		readType(t, c, "synced")
	}
	write(t, toAlice, fmt.Sprintf(`{"type":"send","id":"m1","conv":%q,"body":{"text":"hello"}}`, conv.ID))
	if ack := readType(t, toAlice, "ack"); ack["seq"] != 1.0 {
		t.Fatalf("ack %v, want seq 1", ack)
	}
	if ev := readType(t, toBob, "event"); ev["seq"] != 1.0 || ev["from"] != alice.id {
		t.Fatalf("bob got %v, want alice's message at seq 1", ev)
	}
	var page struct{ Events []struct{ Seq int64 } }
	call(t, "GET", api+"/v1/conversations/"+conv.ID+"/messages?after_seq=0", bob.token, "", &page)
	if len(page.Events) != 1 || page.Events[0].Seq != 1 {
		t.Fatalf("history %+v, want the message at seq 1", page)
	}
	testenv.Eventually(t, 30*time.Second, "bob's unread count is 1 (the projector alone counts it)", func() bool {
		var u struct{ Total int }
		call(t, "GET", api+"/v1/unread", bob.token, "", &u)
		return u.Total == 1
	})
	// Every role counts its NATS traffic: the edge published the send.
	_, metrics := get(t, addr[wiring.Edge]+"/metrics", "")
	if !strings.Contains(metrics, "\nchat_nats_out_messages_total ") || strings.Contains(metrics, "\nchat_nats_out_messages_total 0\n") {
		t.Errorf("the edge's /metrics lacks a count of the NATS messages it published")
	}
}

type user struct{ id, token string }

// dialWS opens u's socket on the edge at base ("http://host:port"), with
// reads bounded to 30 s.
func dialWS(t *testing.T, base string, u user) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/v1/ws?token="+u.token, nil)
	if err != nil {
		t.Fatalf("dial the edge: %v (%v)", err, resp)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	return c
}

func signUp(t *testing.T, api, name string) user {
	t.Helper()
	creds := fmt.Sprintf(`{"username":%q,"password":"correct horse battery"}`, name)
	var reg struct{ ID string }
	call(t, "POST", api+"/v1/users", "", creds, &reg)
	var s struct{ Token string }
	call(t, "POST", api+"/v1/sessions", "", creds, &s)
	return user{id: reg.ID, token: s.Token}
}

// call makes a REST call that must succeed and decodes its answer into out.
func call(t *testing.T, method, url, token, body string, out any) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, url, b, err)
		}
	}
}

func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func write(t *testing.T, c *websocket.Conn, frame string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		t.Fatalf("write %s: %v", frame, err)
	}
}

// readType reads frames until one of type typ (presence and receipts may
// come first) and fails on an error frame.
func readType(t *testing.T, c *websocket.Conn, typ string) map[string]any {
	t.Helper()
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for %s: %v", typ, err)
		}
		var f map[string]any
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("frame %s: %v", b, err)
		}
		switch f["type"] {
		case typ:
			return f
		case "error":
			t.Fatalf("waiting for %s: %s", typ, b)
		}
	}
}

// In one process the fanout projector hands the edge beside it its events
// directly, and the sequencer the command client its answers: the ack
// reaches alice and the event bob while nothing is published on
// deliver.<edge-id> or on the client's answer subjects (where the split
// deployment's fanout and sequencer would send them).
func TestOneProcessHandsOverLocally(t *testing.T) {
	t.Parallel()
	cfg := testenv.Config(t)
	s, err := wiring.Start(context.Background(), cfg, testenv.Logger(t), wiring.AllRoles...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	nc, err := nats.Connect(cfg.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	var mu sync.Mutex
	published := map[string]int{} // events and answers seen on NATS (frames are sent there still)
	sub, err := nc.Subscribe(timeline.DeliverSubject("*"), func(m *nats.Msg) {
		if m.Header.Get(timeline.HeaderKind) != timeline.KindFrame {
			mu.Lock()
			published["event deliveries to the edge"]++
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	answers, err := nc.Subscribe("_CHAT.>", func(*nats.Msg) {
		mu.Lock()
		published["answers to the command client"]++
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	api := "http://" + s.Addr
	conv, toAlice, toBob := directChat(t, api)
	for i := 1; i <= 3; i++ {
		write(t, toAlice, fmt.Sprintf(`{"type":"send","id":"m%d","conv":%q,"body":{"text":"hello"}}`, i, conv))
		if ack := readType(t, toAlice, "ack"); ack["seq"] != float64(i) {
			t.Fatalf("alice got %v, want an ack with seq %d", ack, i)
		}
		if ev := readType(t, toBob, "event"); ev["seq"] != float64(i) {
			t.Fatalf("bob got %v, want seq %d", ev, i)
		}
	}
	// Anything published for the edge has reached this subscriber by now:
	// one round trip after the events arrived.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	_ = sub.Unsubscribe()
	_ = answers.Unsubscribe()
	mu.Lock()
	defer mu.Unlock()
	for what, n := range published {
		t.Errorf("%d %s went through NATS within one process", n, what)
	}
}

// With the embedded JetStream, where this process's sequencer appends every
// event, fanout, history and unread take the events from the sequencer
// instead of reading TIMELINE back: none of them has a consumer, members
// still get every event live, in order, a recall included, and the
// history in Postgres gets every event, the positions kept in PROJECTIONS.
func TestOneProcessProjectorsTakeEventsFromTheSequencer(t *testing.T) {
	t.Parallel()
	cfg := testenv.Config(t)
	cfg.NATSURL, cfg.DataDir = "", t.TempDir()
	if !cfg.Pipelined() {
		t.Fatal("an embedded JetStream should make the sequencer TIMELINE's only writer")
	}
	s, err := wiring.Start(context.Background(), cfg, testenv.Logger(t), wiring.AllRoles...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	api := "http://" + s.Addr
	conv, toAlice, toBob := directChat(t, api)
	for i := 1; i <= 3; i++ {
		write(t, toAlice, fmt.Sprintf(`{"type":"send","id":"m%d","conv":%q,"body":{"text":"hello"}}`, i, conv))
	}
	for i := 1; i <= 3; i++ {
		readType(t, toAlice, "ack")
	}
	write(t, toAlice, fmt.Sprintf(`{"type":"recall","id":"r1","conv":%q,"target":2}`, conv))
	if f := readType(t, toAlice, "ack"); f["seq"] != float64(4) {
		t.Fatalf("alice's recall answered %v, want seq 4", f)
	}
	for i := 1; i <= 4; i++ {
		ev := readType(t, toBob, "event")
		if ev["seq"] != float64(i) {
			t.Fatalf("bob got %v, want seq %d", ev, i)
		}
		if i == 4 && ev["kind"] != "recall" {
			t.Fatalf("bob got %v, want the recall as seq 4", ev)
		}
	}
	ctx := testenv.Context(t, 10*time.Second)
	for _, name := range []string{fanout.ConsumerName, history.ConsumerName, unreadprojector.ConsumerName} {
		if _, err := s.NATS.JS.Consumer(ctx, timeline.TimelineStream, name); !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Fatalf("%s consumer on TIMELINE: %v, want none", name, err)
		}
	}
	pool, err := pgxpool.New(ctx, cfg.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	testenv.Eventually(t, 10*time.Second, "the four events in the history, the recalled one erased", func() bool {
		var n, recalled int
		err := pool.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE recalled) FROM events WHERE conv_id=$1", conv).Scan(&n, &recalled)
		return err == nil && n == 4 && recalled == 1
	})
	kv, err := s.NATS.JS.KeyValue(ctx, timeline.CursorBucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.NATS.JS.Stream(ctx, timeline.TimelineStream)
	if err != nil {
		t.Fatal(err)
	}
	last := strconv.FormatUint(st.CachedInfo().State.LastSeq, 10)
	testenv.Eventually(t, 10*time.Second, "history's and unread's positions at TIMELINE's last event, kept", func() bool {
		for _, name := range []string{history.ConsumerName, unreadprojector.ConsumerName} {
			if e, err := kv.Get(ctx, name); err != nil || string(e.Value()) != last {
				return false
			}
		}
		return true
	})
	// The four commands' results are remembered, and /metrics counts them.
	testenv.Eventually(t, 10*time.Second, "chat_dedupe_keys 4 on /metrics", func() bool {
		_, metrics := get(t, api+"/metrics", "")
		return strings.Contains(metrics, "\nchat_dedupe_keys 4\n")
	})
}

// directChat signs up alice and bob, opens their direct conversation, and
// connects and syncs a socket for each.
func directChat(t *testing.T, api string) (conv string, toAlice, toBob *websocket.Conn) {
	t.Helper()
	alice, bob := signUp(t, api, "alice"), signUp(t, api, "bob")
	var c struct{ ID string }
	call(t, "POST", api+"/v1/conversations", alice.token, fmt.Sprintf(`{"kind":"direct","members":[%q]}`, bob.id), &c)
	toBob, toAlice = dialWS(t, api, bob), dialWS(t, api, alice)
	for _, ws := range []*websocket.Conn{toBob, toAlice} {
		write(t, ws, `{"type":"sync","id":"s1","cursors":{}}`)
		readType(t, ws, "synced")
	}
	return c.ID, toAlice, toBob
}
