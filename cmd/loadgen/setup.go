package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/seqchat/seqchat/events"
)

// peer is one user with one WebSocket.
type peer struct {
	name, id, token, conv string
	ws                    *websocket.Conn
	wmu                   sync.Mutex

	mu   sync.Mutex
	sent map[string]time.Time // command id -> send time, until acked
	// credit is the closed loop's window: a send takes a token, an ack
	// (or an error answer it is not resent for) gives it back.
	credit chan struct{}
	// resend takes the ids of commands refused for load, once their retry
	// time has passed: they go again with the same id, as a client would.
	resend chan string
	// frames the reader routes to whoever waits for a sync answer
	synced  chan map[string]int64
	lastSeq atomic.Int64 // the highest seq this peer saw in its conversation
	ph      atomic.Pointer[phaseState]
	readErr chan error
}

var httpClient = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func call(ctx context.Context, base, method, path, token string, in, out any) error {
	b, _ := json.Marshal(in)
	req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
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

// ticker prints a progress line every second until stop is called.
func ticker(line func() string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				logf("%s", line())
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// parallel runs f(0..n-1) on conc goroutines and returns the first error.
func parallel(n, conc int, f func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range max(1, min(conc, n)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n)) // stop the others
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// accounts registers n users and logs each in.
func accounts(o options, prefix string, n int) ([]*peer, error) {
	ctx := context.Background()
	tag := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	peers := make([]*peer, n)
	var done atomic.Int64
	stop := ticker(func() string { return fmt.Sprintf("setup: %d/%d accounts", done.Load(), n) })
	defer stop()
	err := parallel(n, o.setupConc, func(i int) error {
		name := fmt.Sprintf("%s%s_%d", prefix, tag, i)
		if err := call(ctx, o.base, "POST", "/v1/users", "", map[string]string{"username": name, "password": "loadgen-password"}, nil); err != nil {
			return fmt.Errorf("register: %w", err)
		}
		var s struct {
			Token  string `json:"token"`
			UserID string `json:"user_id"`
		}
		if err := call(ctx, o.base, "POST", "/v1/sessions", "", map[string]string{"username": name, "password": "loadgen-password"}, &s); err != nil {
			return fmt.Errorf("login: %w", err)
		}
		peers[i] = &peer{name: name, id: s.UserID, token: s.Token}
		done.Add(1)
		return nil
	})
	return peers, err
}

// setupPeers creates n users in pairs, one direct conversation per pair,
// opens and syncs a WebSocket for each.
func setupPeers(o options, prefix string, n, nConvs int) ([]*peer, error) {
	n -= n % 2
	if n < 2 {
		return nil, errors.New("need at least 2 connections")
	}
	if nConvs != n/2 {
		// Each pair has its own conversation: 2k and 2k+1 share conversation k.
		logf("setup: %d connections make %d direct conversations (one per pair)", n, n/2)
	}
	peers, err := accounts(o, prefix, n)
	if err != nil {
		return nil, err
	}
	var made atomic.Int64
	stop := ticker(func() string { return fmt.Sprintf("setup: %d/%d conversations", made.Load(), n/2) })
	err = parallel(n/2, o.setupConc, func(k int) error {
		a, b := peers[2*k], peers[2*k+1]
		var c struct{ ID string }
		if err := call(context.Background(), o.base, "POST", "/v1/conversations", a.token, map[string]any{"kind": events.ConvDirect, "members": []string{b.id}}, &c); err != nil {
			return fmt.Errorf("create conversation: %w", err)
		}
		a.conv, b.conv = c.ID, c.ID
		made.Add(1)
		return nil
	})
	stop()
	if err != nil {
		return nil, err
	}
	var dialed atomic.Int64
	stop = ticker(func() string { return fmt.Sprintf("setup: %d/%d connections open and synced", dialed.Load(), n) })
	defer stop()
	err = parallel(n, o.setupConc*2, func(i int) error {
		p := peers[i]
		if err := p.connect(o.base); err != nil {
			return err
		}
		if _, err := p.sync(map[string]int64{}, 30*time.Second); err != nil {
			return err
		}
		dialed.Add(1)
		return nil
	})
	if err != nil {
		closePeers(peers)
		return nil, err
	}
	return peers, nil
}

func wsURL(base, token string) string {
	u, _ := url.Parse(base)
	u.Scheme = map[string]string{"https": "wss"}[u.Scheme]
	if u.Scheme == "" {
		u.Scheme = "ws"
	}
	u.Path = "/v1/ws"
	u.RawQuery = "token=" + url.QueryEscape(token)
	return u.String()
}

// connect opens the peer's WebSocket and starts its reader.
func (p *peer) connect(base string) error {
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(base, p.token), nil)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	p.ws = ws
	p.mu.Lock()
	if p.sent == nil {
		p.sent = map[string]time.Time{}
	}
	p.mu.Unlock()
	p.synced = make(chan map[string]int64, 1)
	p.readErr = make(chan error, 1)
	go p.read(ws, p.synced, p.readErr)
	return nil
}

func (p *peer) write(b []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	return p.ws.WriteMessage(websocket.TextMessage, b)
}

// sync sends a sync with these cursors and waits for its "synced" answer.
func (p *peer) sync(cursors map[string]int64, timeout time.Duration) (map[string]int64, error) {
	b, _ := json.Marshal(map[string]any{"type": "sync", "id": "sync", "cursors": cursors})
	if err := p.write(b); err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	select {
	case h := <-p.synced:
		return h, nil
	case err := <-p.readErr:
		return nil, fmt.Errorf("sync: connection closed: %w", err)
	case <-time.After(timeout):
		return nil, fmt.Errorf("sync: no synced within %v", timeout)
	}
}

func closePeers(peers []*peer) {
	for _, p := range peers {
		if p != nil && p.ws != nil {
			p.ws.Close()
		}
	}
}

// frame is the part of a server frame loadgen looks at.
type frame struct {
	Type  string           `json:"type"`
	ID    string           `json:"id"`
	Conv  string           `json:"conv"`
	Seq   int64            `json:"seq"`
	Code  string           `json:"code"`
	Heads map[string]int64 `json:"heads"`
	Body  struct {
		Sent int64 `json:"sent"`
	} `json:"body"`
}

func (p *peer) read(ws *websocket.Conn, synced chan map[string]int64, readErr chan error) {
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			readErr <- err
			return
		}
		now := time.Now()
		var f frame
		if !quickFrame(b, &f) && json.Unmarshal(b, &f) != nil {
			continue
		}
		ph := p.ph.Load()
		switch f.Type {
		case "ack":
			p.mu.Lock()
			t, ok := p.sent[f.ID]
			delete(p.sent, f.ID)
			p.mu.Unlock()
			p.seen(f.Seq)
			if ok && ph != nil {
				ph.acked(p, t, now)
			}
		case "event":
			p.seen(f.Seq)
			if ph != nil {
				ph.replayed.Add(1)
				ph.delivered(now, f.Body.Sent)
			}
		case "synced":
			select {
			case synced <- f.Heads:
			default:
			}
		case "error":
			p.mu.Lock()
			_, ok := p.sent[f.ID]
			retry := ok && ph != nil && retriable(f.Code)
			if !retry {
				delete(p.sent, f.ID)
			}
			p.mu.Unlock()
			if ph != nil {
				ph.errored(f.Code)
			}
			switch {
			case retry:
				p.retryLater(f.ID)
			case ph != nil:
				ph.failed(p, ok)
			}
		}
	}
}

func (p *peer) seen(seq int64) {
	for {
		old := p.lastSeq.Load()
		if seq <= old || p.lastSeq.CompareAndSwap(old, seq) {
			return
		}
	}
}

// quickFrame reads the fields loadgen needs from the two frames that make
// up nearly all traffic, events and acks, without a JSON decoder: at tens
// of thousands of frames a second the driver shares the server's cores, and
// a sync replay's time would otherwise include decoding it. Anything else,
// or a frame it cannot read, goes to encoding/json.
func quickFrame(b []byte, f *frame) bool {
	switch {
	case bytes.HasPrefix(b, []byte(`{"type":"event",`)):
		f.Type = "event"
	case bytes.HasPrefix(b, []byte(`{"type":"ack",`)):
		f.Type = "ack"
		id, ok := scanString(b, `"id":"`)
		if !ok {
			return false
		}
		f.ID = id
	default:
		return false
	}
	seq, ok := scanInt(b, `"seq":`)
	if !ok {
		return false
	}
	f.Seq = seq
	if f.Type == "event" {
		// Only loadgen's own bodies carry "sent"; others have none.
		f.Body.Sent, _ = scanInt(b, `"sent":`)
	}
	return true
}

func scanInt(b []byte, key string) (int64, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0, false
	}
	i += len(key)
	j := i
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	v, err := strconv.ParseInt(string(b[i:j]), 10, 64)
	return v, err == nil
}

func scanString(b []byte, key string) (string, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return "", false
	}
	i += len(key)
	j := bytes.IndexByte(b[i:], '"')
	if j < 0 || bytes.IndexByte(b[i:i+j], '\\') >= 0 {
		return "", false // escapes: let encoding/json read it
	}
	return string(b[i : i+j]), true
}
