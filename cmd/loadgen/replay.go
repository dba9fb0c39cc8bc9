package main

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// replayResult is the replay test's outcome: medians over the runs.
type replayResult struct {
	Missed int `json:"missed"`
	Runs   int `json:"runs"`
	// SyncMedian is from sending sync to receiving synced, all missed
	// events before it; DialSyncMedian includes the WebSocket handshake.
	SyncMedian     ms   `json:"sync_median_ms"`
	SyncMin        ms   `json:"sync_min_ms"`
	SyncMax        ms   `json:"sync_max_ms"`
	DialSyncMedian ms   `json:"dial_sync_median_ms"`
	Runs_          []ms `json:"sync_runs_ms"`
}

// replayRun: a receiver misses N messages while disconnected, reconnects
// and syncs from the last seq it received; repeated -repeat times.
func replayRun(o options) (*replayResult, error) {
	peers, err := setupPeers(o, "rp", 2, 1)
	if err != nil {
		return nil, err
	}
	defer closePeers(peers)
	a, b := peers[0], peers[1]
	res := &replayResult{Missed: o.replay, Runs: o.repeat}
	var syncs, dialSyncs []time.Duration
	const window = 32
	for run := range o.repeat {
		b.ws.Close()
		<-b.readErr
		cursor := b.lastSeq.Load()
		// The sender sends N messages, W at a time, and waits for every ack.
		ph := &phaseState{}
		a.credit = make(chan struct{}, window)
		for range window {
			a.credit <- struct{}{}
		}
		a.ph.Store(ph)
		for i := range o.replay {
			select {
			case <-a.credit:
			case <-time.After(30 * time.Second):
				return nil, fmt.Errorf("replay: no ack for 30 s after %d sends", i)
			}
			id := "r" + strconv.FormatInt(cmdSeq.Add(1), 36)
			a.mu.Lock()
			a.sent[id] = time.Now()
			a.mu.Unlock()
			if err := a.write([]byte(`{"type":"send","conv":"` + a.conv + `","id":"` + id + `","body":{"text":"missed"}}`)); err != nil {
				return nil, fmt.Errorf("replay: send: %w", err)
			}
		}
		for deadline := time.Now().Add(30 * time.Second); outstanding([]*peer{a}) > 0; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("replay: %d sends unanswered", outstanding([]*peer{a}))
			}
		}
		a.ph.Store(nil)
		if ph.errs.Load() > 0 {
			return nil, fmt.Errorf("replay: %d sends failed: %v", ph.errs.Load(), ph.errCodes)
		}
		head := a.lastSeq.Load()
		// Let the projections settle so that the sync measures replay, not lag.
		time.Sleep(300 * time.Millisecond)

		b.ph.Store(nil)
		t0 := time.Now()
		if err := b.connect(o.base); err != nil {
			return nil, err
		}
		counting := &phaseState{}
		b.ph.Store(counting)
		t1 := time.Now()
		heads, err := b.sync(map[string]int64{b.conv: cursor}, 30*time.Second)
		t2 := time.Now()
		b.ph.Store(nil)
		if err != nil {
			return nil, fmt.Errorf("replay: %w", err)
		}
		got := counting.replayed.Load()
		if heads[b.conv] != head || got != int64(head-cursor) {
			return nil, fmt.Errorf("replay: synced from %d: %d events, head %d; want %d events up to %d", cursor, got, heads[b.conv], head-cursor, head)
		}
		syncs, dialSyncs = append(syncs, t2.Sub(t1)), append(dialSyncs, t2.Sub(t0))
		logf("replay %d/%d: %d missed events in %v (%v with the dial)", run+1, o.repeat, got, t2.Sub(t1).Round(10*time.Microsecond), t2.Sub(t0).Round(10*time.Microsecond))
	}
	for _, d := range syncs {
		res.Runs_ = append(res.Runs_, ms(d))
	}
	slices.Sort(syncs)
	slices.Sort(dialSyncs)
	res.SyncMedian, res.SyncMin, res.SyncMax = ms(syncs[len(syncs)/2]), ms(syncs[0]), ms(syncs[len(syncs)-1])
	res.DialSyncMedian = ms(dialSyncs[len(dialSyncs)/2])
	return res, nil
}

// idleResult is the idle test's outcome.
type idleResult struct {
	Conns             int     `json:"conns"`
	RSSBeforeMiB      float64 `json:"rss_before_mib"`
	RSSConnectedMiB   float64 `json:"rss_connected_mib"`
	RSSSyncedMiB      float64 `json:"rss_synced_mib"`
	KiBPerConnBefore  float64 `json:"kib_per_conn_before_sync"`
	KiBPerConnSynced  float64 `json:"kib_per_conn_after_sync"`
	GoroutinesPerConn float64 `json:"goroutines_per_conn,omitempty"`
}

// metric reads one unlabelled value from the server's /metrics.
func metric(base, name string) (float64, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("no %s in %s/metrics", name, base)
}

// idleRun opens n idle connections (100 users, many devices each), syncs
// each, and reports how much the server's resident memory grew per
// connection before and after the sync.
func idleRun(o options) (*idleResult, error) {
	users, err := accounts(o, "idle", min(100, o.idle))
	if err != nil {
		return nil, err
	}
	runtime.GC()
	time.Sleep(2 * time.Second)
	before, err := metric(o.base, "process_resident_memory_bytes")
	if err != nil {
		return nil, err
	}
	g0, gerr := metric(o.base, "go_goroutines")
	conns := make([]*websocket.Conn, o.idle)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	dialer := websocket.Dialer{ReadBufferSize: 256, WriteBufferSize: 256, HandshakeTimeout: 30 * time.Second}
	var dialed, synced atomic.Int64
	stop := ticker(func() string {
		return fmt.Sprintf("idle: %d/%d connected, %d synced", dialed.Load(), o.idle, synced.Load())
	})
	defer stop()
	err = parallel(o.idle, 16, func(i int) error {
		c, _, err := dialer.Dial(wsURL(o.base, users[i%len(users)].token), nil)
		if err != nil {
			return fmt.Errorf("dial %d: %w", i, err)
		}
		conns[i] = c
		dialed.Add(1)
		return nil
	})
	if err != nil {
		return nil, err
	}
	time.Sleep(5 * time.Second) // let the server settle (presence refresh, GC)
	connected, err := metric(o.base, "process_resident_memory_bytes")
	if err != nil {
		return nil, err
	}
	err = parallel(o.idle, 16, func(i int) error {
		c := conns[i]
		if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"sync","id":"s","cursors":{}}`)); err != nil {
			return fmt.Errorf("sync %d: %w", i, err)
		}
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				return fmt.Errorf("sync %d: %w", i, err)
			}
			if strings.Contains(string(b), `"synced"`) {
				break
			}
		}
		c.SetReadDeadline(time.Time{})
		synced.Add(1)
		// Keep reading (and so answering the server's pings) while idle.
		go func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
		return nil
	})
	if err != nil {
		return nil, err
	}
	time.Sleep(5 * time.Second)
	after, err := metric(o.base, "process_resident_memory_bytes")
	if err != nil {
		return nil, err
	}
	r := &idleResult{Conns: o.idle, RSSBeforeMiB: before / (1 << 20), RSSConnectedMiB: connected / (1 << 20), RSSSyncedMiB: after / (1 << 20),
		KiBPerConnBefore: (connected - before) / float64(o.idle) / 1024, KiBPerConnSynced: (after - before) / float64(o.idle) / 1024}
	if g1, err := metric(o.base, "go_goroutines"); err == nil && gerr == nil {
		r.GoroutinesPerConn = (g1 - g0) / float64(o.idle)
	}
	stop()
	logf("idle: %d connections: %.1f KiB each before sync, %.1f KiB after; holding for %v", o.idle, r.KiBPerConnBefore, r.KiBPerConnSynced, o.dur)
	time.Sleep(o.dur) // keep them open, to look at the server meanwhile
	return r, nil
}
