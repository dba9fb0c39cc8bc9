package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

type phaseSpec struct {
	window int     // > 0: closed loop
	rate   float64 // otherwise: open loop at this total rate
}

func (s phaseSpec) String() string {
	if s.window > 0 {
		return fmt.Sprintf("closed W=%d", s.window)
	}
	return fmt.Sprintf("open %.0f/s", s.rate)
}

// hist is a log-bucketed latency histogram with atomic counters: cheap to
// add to from every reader, and diffable once a second for the progress
// line and the latency-over-time plot.
type hist struct{ b [histBuckets]atomic.Int64 }

const (
	histBuckets = 400
	histMin     = float64(time.Microsecond)
	histGrowth  = 1.05
)

func histIndex(d time.Duration) int {
	if float64(d) <= histMin {
		return 0
	}
	i := int(math.Log(float64(d)/histMin)/math.Log(histGrowth)) + 1
	return min(i, histBuckets-1)
}

func histValue(i int) time.Duration { return time.Duration(histMin * math.Pow(histGrowth, float64(i))) }

func (h *hist) add(d time.Duration) { h.b[histIndex(d)].Add(1) }

func (h *hist) snapshot() (s [histBuckets]int64) {
	for i := range h.b {
		s[i] = h.b[i].Load()
	}
	return s
}

func quantile(counts []int64, q float64) time.Duration {
	var n int64
	for _, c := range counts {
		n += c
	}
	if n == 0 {
		return 0
	}
	want := int64(math.Ceil(q * float64(n)))
	var acc int64
	for i, c := range counts {
		acc += c
		if acc >= max(want, 1) {
			return histValue(i)
		}
	}
	return histValue(len(counts) - 1)
}

// phaseState is what the readers report a phase's answers to.
type phaseState struct {
	spec     phaseSpec
	measure  atomic.Bool // false during warm-up
	start    time.Time
	sent     atomic.Int64
	ackedN   atomic.Int64 // acks of what the phase sent, drain included
	inTime   atomic.Int64 // of those, the ones back before sending stopped
	end      atomic.Int64 // UnixNano when sending stopped; 0 while it goes on
	errs     atomic.Int64
	replayed atomic.Int64 // every event delivered, measured or not
	ackHist  hist
	mu       sync.Mutex
	ackLat   []time.Duration
	delivLat []time.Duration
	errCodes map[string]int
}

func (ph *phaseState) acked(p *peer, sent, now time.Time) {
	if p.credit != nil {
		select {
		case p.credit <- struct{}{}:
		default:
		}
	}
	// Count only what was sent during the measurement.
	if !ph.measure.Load() || sent.Before(ph.start) {
		return
	}
	d := now.Sub(sent)
	ph.ackedN.Add(1)
	if end := ph.end.Load(); end == 0 || now.UnixNano() <= end {
		ph.inTime.Add(1)
	}
	ph.ackHist.add(d)
	ph.mu.Lock()
	ph.ackLat = append(ph.ackLat, d)
	ph.mu.Unlock()
}

func (ph *phaseState) delivered(now time.Time, sent int64) {
	if sent == 0 || !ph.measure.Load() {
		return
	}
	ph.mu.Lock()
	ph.delivLat = append(ph.delivLat, now.Sub(time.Unix(0, sent)))
	ph.mu.Unlock()
}

// failed ends a command that was answered with an error it will not be
// resent for: its credit goes back.
func (ph *phaseState) failed(p *peer, ours bool) {
	if ours && p.credit != nil {
		select {
		case p.credit <- struct{}{}:
		default:
		}
	}
}

// retryAfter is when a client may resend a command refused for load: the
// protocol's "server busy; retry in 1s".
const retryAfter = time.Second

// retriable reports whether a command answered with code is resent, with
// its id, after retryAfter: the refusals for load (docs/protocol.md,
// Overload). It keeps its credit meanwhile, so a closed loop's window
// counts it as outstanding, as a client's would.
func retriable(code string) bool { return code == "unavailable" || code == "rate_limited" }

func (p *peer) retryLater(id string) {
	ch := p.resend
	time.AfterFunc(retryAfter, func() {
		select {
		case ch <- id:
		default: // the phase is over, or the queue is full: left unanswered
		}
	})
}

// errored counts an error answer by code.
func (ph *phaseState) errored(code string) {
	ph.errs.Add(1)
	ph.mu.Lock()
	if ph.errCodes == nil {
		ph.errCodes = map[string]int{}
	}
	ph.errCodes[code]++
	ph.mu.Unlock()
}

// phaseResult is one row of the summary.
type phaseResult struct {
	Mode         string         `json:"mode"` // "closed" or "open"
	Window       int            `json:"window,omitempty"`
	OfferedRate  float64        `json:"offered_rate,omitempty"`
	Seconds      float64        `json:"seconds"`
	Sent         int64          `json:"sent"`
	Acked        int64          `json:"acked"`          // answered, drain included
	AckedInPhase int64          `json:"acked_in_phase"` // answered before sending stopped: AckedPerSec counts these
	AckedPerSec  float64        `json:"acked_per_sec"`
	Errors       int64          `json:"errors"`
	ErrorCodes   map[string]int `json:"error_codes,omitempty"`
	Unanswered   int64          `json:"unanswered"`
	Ack          latency        `json:"ack_latency"`
	Delivery     latency        `json:"delivery_latency"`
	Deliveries   int            `json:"deliveries"`
	CPU          *cpuResult     `json:"cpu,omitempty"`
	Allocs       *allocResult   `json:"allocs,omitempty"`
	Series       []second       `json:"series"`
	cdf          []time.Duration
}

type latency struct {
	P50 ms `json:"p50_ms"`
	P90 ms `json:"p90_ms"`
	P99 ms `json:"p99_ms"`
	Max ms `json:"max_ms"`
}

// ms is a duration that shows (and marshals) as milliseconds.
type ms time.Duration

func (d ms) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(d)/1e6, 'f', 3, 64), nil
}

func (d ms) String() string {
	switch v := time.Duration(d); {
	case v < 10*time.Millisecond:
		return fmt.Sprintf("%.2f", float64(v)/1e6)
	case v < 100*time.Millisecond:
		return fmt.Sprintf("%.1f", float64(v)/1e6)
	default:
		return fmt.Sprintf("%.0f", float64(v)/1e6)
	}
}

func summarize(d []time.Duration) latency {
	if len(d) == 0 {
		return latency{}
	}
	slices.Sort(d)
	at := func(p float64) ms { return ms(d[int(float64(len(d)-1)*p)]) }
	return latency{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: ms(d[len(d)-1])}
}

// second is one point of the latency-over-time series.
type second struct {
	T     float64 `json:"t"`
	Acked int64   `json:"acked"`
	P50   ms      `json:"p50_ms"`
	P99   ms      `json:"p99_ms"`
}

// maxDrain bounds the wait for the answers to what a phase sent: an
// overloaded server works off its backlog before the next phase starts, so
// that one phase's backlog does not land in the next one's figures.
const maxDrain = 90 * time.Second

func runPhase(o options, peers []*peer, spec phaseSpec) (*phaseResult, error) {
	ph := &phaseState{spec: spec}
	for _, p := range peers {
		p.mu.Lock()
		clear(p.sent)
		p.mu.Unlock()
		p.credit = nil
		p.resend = make(chan string, 1024)
		if spec.window > 0 {
			p.credit = make(chan struct{}, spec.window)
			for range spec.window {
				p.credit <- struct{}{}
			}
		}
		p.ph.Store(ph)
	}
	defer func() {
		for _, p := range peers {
			p.ph.Store(nil)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	body := `{"text":"load` + fillerText(o.bodyFiller) + `","sent":`
	var senders sync.WaitGroup
	for i, p := range peers {
		senders.Add(1)
		go func() {
			defer senders.Done()
			sendLoop(ctx, p, i, len(peers), spec, body, ph)
		}()
	}
	if o.warmup > 0 {
		logf("%s: warming up for %v", spec, o.warmup)
		time.Sleep(o.warmup)
	}
	cpu0, mem0 := readCPU(o), readAllocs(o.base)
	ph.start = time.Now()
	ph.sent.Store(0)
	ph.measure.Store(true)
	logf("%s: %d connections, measuring for %v", spec, len(peers), o.dur)
	res := &phaseResult{Mode: "open", OfferedRate: spec.rate}
	if spec.window > 0 {
		res.Mode, res.Window, res.OfferedRate = "closed", spec.window, 0
	}
	last := ph.ackHist.snapshot()
	var lastAcked int64
	t := time.NewTicker(time.Second)
	end := time.After(o.dur)
loop:
	for {
		select {
		case <-t.C:
			cur := ph.ackHist.snapshot()
			var diff [histBuckets]int64
			for i := range cur {
				diff[i] = cur[i] - last[i]
			}
			last = cur
			n := ph.ackedN.Load()
			s := second{T: time.Since(ph.start).Seconds(), Acked: n - lastAcked, P50: ms(quantile(diff[:], 0.5)), P99: ms(quantile(diff[:], 0.99))}
			lastAcked = n
			res.Series = append(res.Series, s)
			logf("%s: %3.0fs sent %d acked %d (%d/s) p50 %v ms p99 %v ms errors %d", spec, s.T, ph.sent.Load(), n, s.Acked, s.P50, s.P99, ph.errs.Load())
		case <-end:
			break loop
		case <-interrupted:
			logf("%s: interrupted: ending the phase", spec)
			break loop
		}
	}
	t.Stop()
	cancel()
	senders.Wait()
	ph.end.Store(time.Now().UnixNano())
	elapsed := time.Since(ph.start)
	// Wait (bounded) for the answers to what was sent. Their latency
	// counts; the acked rate counts only those back within the phase.
	deadline := time.Now().Add(maxDrain)
	for last := time.Now(); outstanding(peers) > 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if time.Since(last) >= time.Second {
			last = time.Now()
			logf("%s: draining: %d sends not answered yet", spec, outstanding(peers))
		}
	}
	time.Sleep(100 * time.Millisecond) // the deliveries to the peers trail the acks
	ph.measure.Store(false)
	cpu1, mem1 := readCPU(o), readAllocs(o.base)

	ph.mu.Lock()
	defer ph.mu.Unlock()
	res.Seconds = elapsed.Seconds()
	res.Sent = ph.sent.Load()
	res.Acked = ph.ackedN.Load()
	res.AckedInPhase = ph.inTime.Load()
	res.AckedPerSec = float64(res.AckedInPhase) / elapsed.Seconds()
	res.Errors = ph.errs.Load()
	res.ErrorCodes = ph.errCodes
	res.Unanswered = int64(outstanding(peers))
	res.Ack = summarize(ph.ackLat)
	res.Delivery = summarize(ph.delivLat)
	res.Deliveries = len(ph.delivLat)
	res.cdf = ph.ackLat
	res.CPU = cpuDiff(cpu0, cpu1, res.Acked)
	res.Allocs = allocDiff(mem0, mem1, res.Acked)
	logf("%s: done: %.0f acked/s, ack p50 %v ms p99 %v ms", spec, res.AckedPerSec, res.Ack.P50, res.Ack.P99)
	return res, nil
}

func fillerText(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'x'
	}
	return string(b)
}

func outstanding(peers []*peer) int {
	n := 0
	for _, p := range peers {
		p.mu.Lock()
		n += len(p.sent)
		p.mu.Unlock()
	}
	return n
}

var cmdSeq atomic.Int64

// sendLoop sends one peer's messages: paced by its credit in a closed
// loop, by a ticker in an open one.
func sendLoop(ctx context.Context, p *peer, i, n int, spec phaseSpec, body string, ph *phaseState) {
	var tick <-chan time.Time
	if spec.window == 0 {
		interval := time.Duration(float64(time.Second) * float64(n) / spec.rate)
		// Spread the senders' ticks over one interval.
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(i) * interval / time.Duration(n)):
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	prefix := `{"type":"send","conv":"` + p.conv + `","id":"`
	buf := make([]byte, 0, 256)
	for {
		var id string
		var at time.Time
		select {
		case <-ctx.Done():
			return
		case <-tick: // nil in a closed loop
		case <-p.credit: // nil in an open loop
		case id = <-p.resend:
			p.mu.Lock()
			at = p.sent[id]
			p.mu.Unlock()
			if at.IsZero() {
				continue // answered meanwhile, or of an earlier phase
			}
		}
		if id == "" {
			id, at = "m"+strconv.FormatInt(cmdSeq.Add(1), 36), time.Now()
			p.mu.Lock()
			p.sent[id] = at
			p.mu.Unlock()
			if ph.measure.Load() {
				ph.sent.Add(1)
			}
		}
		// A resend carries the first send's time: its ack's latency is the
		// whole wait, retries included.
		buf = append(buf[:0], prefix...)
		buf = append(buf, id...)
		buf = append(buf, `","body":`...)
		buf = append(buf, body...)
		buf = strconv.AppendInt(buf, at.UnixNano(), 10)
		buf = append(buf, "}}"...)
		if err := p.write(buf); err != nil {
			ph.errored("write: " + err.Error())
			return
		}
	}
}
