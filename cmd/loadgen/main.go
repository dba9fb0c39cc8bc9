// Command loadgen measures a running chat system end to end: it registers
// users over REST, pairs them in direct conversations, opens one WebSocket
// per user and sends at a target total rate, then reports acked messages per
// second and the p50/p99 of ack latency and of send-to-delivery latency.
//
// Run the system with CHAT_RATE_LIMITS=off, e.g.
//
//	CHAT_RATE_LIMITS=off go run ./cmd/chatd &
//	go run ./cmd/loadgen -url http://127.0.0.1:8080 -conns 200 -convs 100 -rate 20000 -duration 20s
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

func main() {
	base := flag.String("url", "http://127.0.0.1:8080", "the system's REST and /v1/ws address")
	conns := flag.Int("conns", 200, "WebSocket connections, one user each")
	convs := flag.Int("convs", 100, "direct conversations; each connection sends in one")
	rate := flag.Float64("rate", 10000, "messages per second, all connections together")
	dur := flag.Duration("duration", 20*time.Second, "how long to send")
	idle := flag.Int("idle", 0, "instead of sending: hold this many idle connections for -duration and report the server's RSS per connection (from its /metrics)")
	flag.Parse()
	var err error
	if *idle > 0 {
		err = idleRun(*base, *idle, *dur)
	} else {
		err = run(*base, *conns, *convs, *rate, *dur)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type peer struct {
	id, token, conv string
	ws              *websocket.Conn
	wmu             sync.Mutex
	sent            sync.Map // command id -> send time
}

type stats struct {
	mu       sync.Mutex
	ack      []time.Duration
	delivery []time.Duration
	acked    atomic.Int64
	errors   atomic.Int64
}

func run(base string, nConns, nConvs int, rate float64, dur time.Duration) error {
	if nConns < 2*nConvs {
		nConvs = nConns / 2
	}
	if nConvs < 1 {
		return fmt.Errorf("need at least 2 connections")
	}
	tag := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	peers := make([]*peer, nConns)
	for i := range peers {
		name := fmt.Sprintf("lg%s_%d", tag, i)
		if err := call(base, "POST", "/v1/users", "", map[string]string{"username": name, "password": "loadgen-password"}, nil); err != nil {
			return fmt.Errorf("register: %w", err)
		}
		var s struct {
			Token  string `json:"token"`
			UserID string `json:"user_id"`
		}
		if err := call(base, "POST", "/v1/sessions", "", map[string]string{"username": name, "password": "loadgen-password"}, &s); err != nil {
			return fmt.Errorf("login: %w", err)
		}
		peers[i] = &peer{id: s.UserID, token: s.Token}
	}
	// Connections 2k and 2k+1 share conversation k (mod convs).
	for i := 0; i+1 < nConns; i += 2 {
		a, b := peers[i], peers[i+1]
		var c struct{ ID string }
		if err := call(base, "POST", "/v1/conversations", a.token, map[string]any{"kind": "direct", "members": []string{b.id}}, &c); err != nil {
			return fmt.Errorf("create conversation: %w", err)
		}
		a.conv, b.conv = c.ID, c.ID
	}
	if nConns%2 == 1 {
		peers = peers[:nConns-1]
	}
	u, _ := url.Parse(base)
	u.Scheme = map[string]string{"https": "wss"}[u.Scheme]
	if u.Scheme == "" {
		u.Scheme = "ws"
	}
	u.Path = "/v1/ws"
	st := &stats{}
	var readers sync.WaitGroup
	for _, p := range peers {
		q := u
		q.RawQuery = "token=" + url.QueryEscape(p.token)
		ws, _, err := websocket.DefaultDialer.Dial(q.String(), nil)
		if err != nil {
			return fmt.Errorf("dial: %w", err)
		}
		p.ws = ws
		readers.Add(1)
		go func() { defer readers.Done(); read(p, st) }()
	}
	fmt.Printf("%d connections in %d conversations; sending %.0f msgs/s for %v\n", len(peers), len(peers)/2, rate, dur)
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	per := rate / float64(len(peers))
	interval := time.Duration(float64(time.Second) / per)
	start := time.Now()
	var senders sync.WaitGroup
	for i, p := range peers {
		senders.Add(1)
		go func() {
			defer senders.Done()
			// Spread the senders' ticks over one interval.
			time.Sleep(time.Duration(i) * interval / time.Duration(len(peers)))
			t := time.NewTicker(interval)
			defer t.Stop()
			for n := 0; ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				id := fmt.Sprintf("m%d", n)
				now := time.Now()
				p.sent.Store(id, now)
				b, _ := json.Marshal(map[string]any{"type": "send", "id": id, "conv": p.conv,
					"body": map[string]any{"text": "load", "sent": now.UnixNano()}})
				p.wmu.Lock()
				err := p.ws.WriteMessage(websocket.TextMessage, b)
				p.wmu.Unlock()
				if err != nil {
					st.errors.Add(1)
					return
				}
			}
		}()
	}
	senders.Wait()
	time.Sleep(2 * time.Second) // let the last acks and deliveries in
	elapsed := time.Since(start) - 2*time.Second
	for _, p := range peers {
		p.ws.Close()
	}
	readers.Wait()
	st.mu.Lock()
	defer st.mu.Unlock()
	fmt.Printf("acked: %d in %v = %.0f msgs/s, errors %d\n", st.acked.Load(), elapsed.Round(time.Millisecond), float64(st.acked.Load())/elapsed.Seconds(), st.errors.Load())
	fmt.Printf("ack latency:      p50 %v  p99 %v\n", pct(st.ack, 50), pct(st.ack, 99))
	fmt.Printf("delivery latency: p50 %v  p99 %v  (%d events)\n", pct(st.delivery, 50), pct(st.delivery, 99), len(st.delivery))
	return nil
}

func read(p *peer, st *stats) {
	for {
		_, b, err := p.ws.ReadMessage()
		if err != nil {
			return
		}
		now := time.Now()
		var f struct {
			Type string `json:"type"`
			ID   string `json:"id"`
			Body struct {
				Sent int64 `json:"sent"`
			} `json:"body"`
		}
		if json.Unmarshal(b, &f) != nil {
			continue
		}
		switch f.Type {
		case "ack":
			if v, ok := p.sent.LoadAndDelete(f.ID); ok {
				st.acked.Add(1)
				st.mu.Lock()
				st.ack = append(st.ack, now.Sub(v.(time.Time)))
				st.mu.Unlock()
			}
		case "event":
			if f.Body.Sent > 0 {
				st.mu.Lock()
				st.delivery = append(st.delivery, now.Sub(time.Unix(0, f.Body.Sent)))
				st.mu.Unlock()
			}
		case "error":
			st.errors.Add(1)
		}
	}
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[(len(d)-1)*p/100].Round(10 * time.Microsecond)
}

func call(base, method, path, token string, in, out any) error {
	b, _ := json.Marshal(in)
	req, err := http.NewRequest(method, base+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("%s %s: %d %s %s", method, path, resp.StatusCode, e.Error.Code, e.Error.Message)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// idleRun opens n idle connections (100 users, many devices each) and
// reports how much the server's resident memory grew per connection.
func idleRun(base string, n int, hold time.Duration) error {
	rss := func() (float64, error) {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "process_resident_memory_bytes "); ok {
				return strconv.ParseFloat(strings.TrimSpace(v), 64)
			}
		}
		return 0, fmt.Errorf("no process_resident_memory_bytes in %s/metrics", base)
	}
	tag := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	users := min(100, n)
	tokens := make([]string, users)
	for i := range tokens {
		name := fmt.Sprintf("idle%s_%d", tag, i)
		if err := call(base, "POST", "/v1/users", "", map[string]string{"username": name, "password": "loadgen-password"}, nil); err != nil {
			return fmt.Errorf("register: %w", err)
		}
		var s struct {
			Token string `json:"token"`
		}
		if err := call(base, "POST", "/v1/sessions", "", map[string]string{"username": name, "password": "loadgen-password"}, &s); err != nil {
			return fmt.Errorf("login: %w", err)
		}
		tokens[i] = s.Token
	}
	runtime.GC()
	time.Sleep(2 * time.Second)
	before, err := rss()
	if err != nil {
		return err
	}
	u, _ := url.Parse(base)
	u.Scheme = map[string]string{"https": "wss"}[u.Scheme]
	if u.Scheme == "" {
		u.Scheme = "ws"
	}
	u.Path = "/v1/ws"
	conns := make([]*websocket.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dialer := websocket.Dialer{ReadBufferSize: 256, WriteBufferSize: 256, HandshakeTimeout: 30 * time.Second}
	for i := 0; i < n; i++ {
		q := u
		q.RawQuery = "token=" + url.QueryEscape(tokens[i%users])
		c, _, err := dialer.Dial(q.String(), nil)
		if err != nil {
			return fmt.Errorf("dial %d: %w", i, err)
		}
		conns = append(conns, c)
	}
	time.Sleep(5 * time.Second) // let the server settle (presence refresh, GC)
	after, err := rss()
	if err != nil {
		return err
	}
	fmt.Printf("%d idle connections: server RSS %.1f MiB -> %.1f MiB, %.1f KiB per connection\n",
		n, before/(1<<20), after/(1<<20), (after-before)/float64(n)/1024)
	time.Sleep(hold) // keep them open, to look at the server meanwhile
	return nil
}
