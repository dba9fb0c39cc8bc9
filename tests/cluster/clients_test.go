package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/seqchat/seqchat/tests/check/checker"
)

// recorder keeps the history of a run, in memory for the checker and as
// JSON lines in a file (for `go run ./tests/check -history FILE`).
type recorder struct {
	mu   sync.Mutex
	recs []checker.Record
	f    *os.File
	w    *bufio.Writer
}

func newRecorder(t testing.TB, path string) *recorder {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{f: f, w: bufio.NewWriter(f)}
	t.Cleanup(func() { r.close() })
	return r
}

func (r *recorder) add(rec checker.Record) {
	rec.At = time.Now().UnixMilli()
	b, _ := json.Marshal(rec)
	r.mu.Lock()
	r.recs = append(r.recs, rec)
	r.w.Write(b)
	r.w.WriteByte('\n')
	r.mu.Unlock()
}

func (r *recorder) snapshot() []checker.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]checker.Record(nil), r.recs...)
}

func (r *recorder) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f != nil {
		r.w.Flush()
		r.f.Close()
		r.f = nil
	}
}

// user is an account with a token and its direct conversation.
type user struct {
	id, token, conv string
}

// makeUsers registers n users (n even) and pairs them in n/2 direct
// conversations.
func makeUsers(t testing.TB, api, tag string, n int) []*user {
	t.Helper()
	users := make([]*user, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	for i := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			name := fmt.Sprintf("%s_%d", tag, i)
			var err error
			for attempt := 0; attempt < 20; attempt++ {
				if err = rest(api, "POST", "/v1/users", "", map[string]string{"username": name, "password": "cluster-password"}, nil); err == nil || attempt > 0 && isConflict(err) {
					var s struct {
						Token  string `json:"token"`
						UserID string `json:"user_id"`
					}
					if err = rest(api, "POST", "/v1/sessions", "", map[string]string{"username": name, "password": "cluster-password"}, &s); err == nil {
						users[i] = &user{id: s.UserID, token: s.Token}
						return
					}
				}
				time.Sleep(250 * time.Millisecond)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("register users: %v", err)
	}
	for i := 0; i+1 < n; i += 2 {
		a, b := users[i], users[i+1]
		var c struct{ ID string }
		var err error
		for attempt := 0; attempt < 20; attempt++ {
			if err = rest(api, "POST", "/v1/conversations", a.token, map[string]any{"kind": "direct", "members": []string{b.id}}, &c); err == nil {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("create conversation: %v", err)
		}
		a.conv, b.conv = c.ID, c.ID
	}
	return users
}

func isConflict(err error) bool { return err != nil && contains(err.Error(), ": 409 ") }

func contains(s, sub string) bool {
	return len(sub) <= len(s) && (func() bool {
		for i := 0; i+len(sub) <= len(s); i++ {
			if s[i:i+len(sub)] == sub {
				return true
			}
		}
		return false
	})()
}

// load says how clients behave.
type load struct {
	interval      time.Duration // between new messages of one client
	window        int           // unacked messages a client may have at once
	resendAfter   time.Duration // resend a pending message after this long
	finishTimeout time.Duration // after the traffic ends, how long to wait for the last acks
}

var defaultLoad = load{interval: 100 * time.Millisecond, window: 4, resendAfter: 3 * time.Second, finishTimeout: 90 * time.Second}

// ackLog collects ack and live-event times across clients.
type ackLog struct {
	mu     sync.Mutex
	acks   []ackAt // every ack
	events []time.Time
	lat    []time.Duration // first send to ack
}

type ackAt struct {
	client string
	at     time.Time
}

func (l *ackLog) ack(client string, at time.Time, lat time.Duration) {
	l.mu.Lock()
	l.acks = append(l.acks, ackAt{client, at})
	if lat > 0 {
		l.lat = append(l.lat, lat)
	}
	l.mu.Unlock()
}

// latency is the p-th percentile of ack latency.
func (l *ackLog) latency(p int) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lat) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), l.lat...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*p/100].Round(100 * time.Microsecond)
}

// firstEvent is how long after t0 the first live event arrived (-1: none).
func (l *ackLog) firstEvent(t0 time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	first := time.Duration(-1)
	for _, e := range l.events {
		if d := e.Sub(t0); d >= 0 && (first < 0 || d < first) {
			first = d
		}
	}
	return first
}

func (l *ackLog) event(at time.Time) {
	l.mu.Lock()
	l.events = append(l.events, at)
	l.mu.Unlock()
}

// between counts acks and live events in [from, to).
func (l *ackLog) between(from, to time.Time) (acks, events int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.acks {
		if !a.at.Before(from) && a.at.Before(to) {
			acks++
		}
	}
	for _, e := range l.events {
		if !e.Before(from) && e.Before(to) {
			events++
		}
	}
	return
}

// recovery is, after t0, how long until the first ack, and until every
// client that got an ack after t0 got its first one.
func (l *ackLog) recovery(t0 time.Time) (first, all time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	firstBy := map[string]time.Time{}
	for _, a := range l.acks {
		if a.at.Before(t0) {
			continue
		}
		if f, ok := firstBy[a.client]; !ok || a.at.Before(f) {
			firstBy[a.client] = a.at
		}
	}
	first = -1
	for _, at := range firstBy {
		d := at.Sub(t0)
		if first < 0 || d < first {
			first = d
		}
		all = max(all, d)
	}
	return first, all
}

// maxStall is the longest time one client went without an ack while it had
// messages pending, between from and to.
func (l *ackLog) maxStall(from, to time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	by := map[string][]time.Time{}
	for _, a := range l.acks {
		if !a.at.Before(from) && a.at.Before(to) {
			by[a.client] = append(by[a.client], a.at)
		}
	}
	var worst time.Duration
	for _, ts := range by {
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
		for i := 1; i < len(ts); i++ {
			worst = max(worst, ts[i].Sub(ts[i-1]))
		}
	}
	return worst
}

// client is one user chatting over WebSocket with resend-until-ack.
type client struct {
	u       *user
	edges   []string
	rec     *recorder
	acks    *ackLog
	ld      load
	stopped *atomic.Bool // the traffic phase ended: send nothing new

	next    int
	cursor  int64
	pending map[string]*pend
	order   []string // pending ids in the order first sent
	conns   int
	unacked int // left pending when it gave up
}

type pend struct {
	n       int
	firstAt time.Time
	lastAt  time.Time
	sends   int
}

type frame struct {
	Type  string           `json:"type"`
	ID    string           `json:"id"`
	Conv  string           `json:"conv"`
	Seq   int64            `json:"seq"`
	From  string           `json:"from"`
	Kind  string           `json:"kind"`
	Code  string           `json:"code"`
	Heads map[string]int64 `json:"heads"`
}

// run chats until the traffic stops and everything sent is acked (or the
// finish timeout passes).
func (c *client) run(ctx context.Context) {
	c.pending = map[string]*pend{}
	var finishBy time.Time
	for {
		if c.stopped.Load() && finishBy.IsZero() {
			finishBy = time.Now().Add(c.ld.finishTimeout)
		}
		if !finishBy.IsZero() && (len(c.pending) == 0 || time.Now().After(finishBy)) || ctx.Err() != nil {
			c.unacked = len(c.pending)
			return
		}
		ws, edge := c.dial()
		if ws == nil {
			time.Sleep(time.Duration(100+rand.IntN(200)) * time.Millisecond)
			continue
		}
		c.session(ctx, ws, edge, &finishBy)
	}
}

func (c *client) dial() (*websocket.Conn, string) {
	d := websocket.Dialer{HandshakeTimeout: 3 * time.Second}
	start := rand.IntN(len(c.edges))
	for i := range c.edges {
		edge := c.edges[(start+i)%len(c.edges)]
		u := url.URL{Scheme: "ws", Host: edge, Path: "/v1/ws", RawQuery: "token=" + url.QueryEscape(c.u.token)}
		ws, resp, err := d.Dial(u.String(), nil)
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		if err == nil {
			return ws, edge
		}
	}
	return nil, ""
}

func (c *client) session(ctx context.Context, ws *websocket.Conn, edge string, finishBy *time.Time) {
	c.conns++
	conn := fmt.Sprintf("%s/%d", c.u.id, c.conns)
	c.rec.add(checker.Record{T: checker.TConnect, Client: c.u.id, Conn: conn, Edge: edge})
	defer func() {
		ws.Close()
		c.rec.add(checker.Record{T: checker.TDisconnect, Client: c.u.id, Conn: conn})
	}()
	write := func(v any) bool {
		b, _ := json.Marshal(v)
		_ = ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
		return ws.WriteMessage(websocket.TextMessage, b) == nil
	}
	c.rec.add(checker.Record{T: checker.TSync, Client: c.u.id, Conn: conn, Cursors: map[string]int64{c.u.conv: c.cursor}})
	if !write(map[string]any{"type": "sync", "id": fmt.Sprintf("s%d", c.conns), "cursors": map[string]int64{c.u.conv: c.cursor}}) {
		return
	}
	frames := make(chan frame, 256)
	go func() {
		defer close(frames)
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var f frame
			if json.Unmarshal(b, &f) == nil {
				frames <- f
			}
		}
	}()
	defer func() {
		ws.Close()
		for range frames { // let the reader end
		}
	}()
	send := func(id string, resend bool) bool {
		p := c.pending[id]
		p.sends++
		p.lastAt = time.Now()
		c.rec.add(checker.Record{T: checker.TSend, Client: c.u.id, Conn: conn, Conv: c.u.conv, ID: id, Resend: resend})
		return write(map[string]any{"type": "send", "id": id, "conv": c.u.conv, "body": map[string]any{"text": id, "n": p.n}})
	}
	resolve := func(id string) {
		if _, ok := c.pending[id]; !ok {
			return
		}
		delete(c.pending, id)
		for i, o := range c.order {
			if o == id {
				c.order = append(c.order[:i], c.order[i+1:]...)
				break
			}
		}
	}
	synced := false
	lastFrame := time.Now()
	tick := time.NewTicker(time.Duration(float64(c.ld.interval) * (0.8 + 0.4*rand.Float64())))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case f, ok := <-frames:
			if !ok {
				return
			}
			lastFrame = time.Now()
			switch f.Type {
			case "ack":
				if f.Seq == 0 {
					continue
				}
				c.rec.add(checker.Record{T: checker.TAck, Client: c.u.id, Conn: conn, Conv: f.Conv, ID: f.ID, Seq: f.Seq})
				var lat time.Duration
				if p := c.pending[f.ID]; p != nil {
					lat = time.Since(p.firstAt)
				}
				c.acks.ack(c.u.id, time.Now(), lat)
				c.cursor = max(c.cursor, f.Seq)
				resolve(f.ID)
			case "event":
				c.rec.add(checker.Record{T: checker.TEvent, Client: c.u.id, Conn: conn, Conv: f.Conv, Seq: f.Seq, ID: f.ID, From: f.From, Kind: f.Kind})
				if synced {
					c.acks.event(time.Now())
				}
				if f.Conv == c.u.conv {
					c.cursor = max(c.cursor, f.Seq)
				}
				if f.From == c.u.id {
					resolve(f.ID)
				}
			case "synced":
				c.rec.add(checker.Record{T: checker.TSynced, Client: c.u.id, Conn: conn, Heads: f.Heads})
				synced = true
				// Resend, in order, whatever the sync did not show as sequenced.
				for _, id := range append([]string(nil), c.order...) {
					if !send(id, true) {
						return
					}
				}
			case "error":
				c.rec.add(checker.Record{T: checker.TError, Client: c.u.id, Conn: conn, ID: f.ID, Code: f.Code})
			}
		case <-tick.C:
			if !synced {
				if time.Since(lastFrame) > 15*time.Second {
					return // no answer to the sync: try another connection
				}
				continue
			}
			now := time.Now()
			for _, id := range append([]string(nil), c.order...) {
				if now.Sub(c.pending[id].lastAt) > c.ld.resendAfter {
					if !send(id, true) {
						return
					}
				}
			}
			if len(c.pending) > 0 && now.Sub(lastFrame) > 12*time.Second {
				return // a silent connection: reconnect
			}
			if c.stopped.Load() {
				if len(c.pending) == 0 || now.After(*finishBy) {
					return
				}
				continue
			}
			if len(c.pending) < c.ld.window {
				c.next++
				id := fmt.Sprintf("m%05d", c.next)
				c.pending[id] = &pend{n: c.next, firstAt: now}
				c.order = append(c.order, id)
				if !send(id, false) {
					return
				}
			}
		}
	}
}

// traffic runs clients for users until stop is called, then lets them
// finish; wait returns when they have.
type traffic struct {
	clients []*client
	acks    *ackLog
	rec     *recorder
	stopped atomic.Bool
	wg      sync.WaitGroup
	cancel  context.CancelFunc
	started time.Time
}

func startTraffic(users []*user, edges []string, rec *recorder, ld load) *traffic {
	tr := &traffic{acks: &ackLog{}, rec: rec, started: time.Now()}
	ctx, cancel := context.WithCancel(context.Background())
	tr.cancel = cancel
	for _, u := range users {
		c := &client{u: u, edges: edges, rec: rec, acks: tr.acks, ld: ld, stopped: &tr.stopped}
		tr.clients = append(tr.clients, c)
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			// Spread the starts a little.
			time.Sleep(time.Duration(rand.IntN(200)) * time.Millisecond)
			c.run(ctx)
		}()
	}
	return tr
}

// finish stops new messages and waits for the clients to get their acks.
func (tr *traffic) finish(d time.Duration) (unacked int) {
	tr.stopped.Store(true)
	done := make(chan struct{})
	go func() { tr.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		tr.cancel()
		<-done
	}
	tr.cancel()
	for _, c := range tr.clients {
		unacked += c.unacked
	}
	return unacked
}
