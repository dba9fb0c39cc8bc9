// Command loadgen is the system's benchmark: it registers users over REST,
// pairs them in direct conversations, opens one WebSocket per user, syncs
// each, and then runs one or more phases:
//
//   - closed loop (-window 1,4,32): every connection keeps W sends
//     outstanding and sends the next one when an ack comes back; this
//     measures the saturation throughput;
//   - open loop (-rate 1000,5000): all connections together offer that many
//     sends per second regardless of acks; this measures latency under a
//     given load;
//   - replay (-replay 1000): a connection that missed N messages reconnects
//     and syncs from the last seq it received; the time until all N events
//     and "synced" have arrived, median over -repeat runs;
//   - idle (-idle 10000): that many connections that sync and then stay
//     idle; the server's RSS per connection before and after the sync.
//
// A command refused for load (unavailable, rate_limited) is resent with its
// id after a second, as the protocol asks of a client; it keeps its place in
// the window meanwhile, and its ack latency counts from the first send. The
// errors column counts the refusals.
//
// Each phase prints a progress line every second (so does the account
// setup) and the run ends with a summary table, or JSON with -json. With
// -pids (and -pgdb for the Postgres backends of one database) it reports
// the CPU those processes used per acked message; -plot writes an SVG of
// ack latency over time and its distribution.
//
// Run the system with CHAT_RATE_LIMITS=off, e.g.
//
//	CHAT_RATE_LIMITS=off go run ./cmd/chatd &
//	go run ./cmd/loadgen -window 1,4,32 -rate 1000,5000,10000 -duration 20s -pids $(pgrep -n chatd) -plot lat.svg
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	base       string
	conns      int
	convs      int
	rates      []float64
	windows    []int
	dur        time.Duration
	warmup     time.Duration
	idle       int
	replay     int
	repeat     int
	pids       []int
	pgdb       string
	jsonOut    bool
	plot       string
	setupConc  int
	bodyFiller int
}

func main() {
	var o options
	flag.StringVar(&o.base, "url", "http://127.0.0.1:8080", "the system's REST and /v1/ws address")
	flag.IntVar(&o.conns, "conns", 200, "WebSocket connections, one user each")
	flag.IntVar(&o.convs, "convs", 100, "direct conversations; each connection sends in one")
	rate := flag.String("rate", "10000", "open loop: messages per second, all connections together; a comma-separated list runs one phase per rate")
	window := flag.String("window", "0", "closed loop: sends outstanding per connection; a comma-separated list runs one phase per window; 0 runs the open-loop -rate phases instead")
	flag.DurationVar(&o.dur, "duration", 20*time.Second, "how long each phase sends (the idle test: how long to hold the connections)")
	flag.DurationVar(&o.warmup, "warmup", 0, "send this long before each phase's measurement starts (not counted)")
	flag.IntVar(&o.idle, "idle", 0, "instead of sending: open this many idle connections, sync them, and report the server's RSS per connection (from its /metrics)")
	flag.IntVar(&o.replay, "replay", 0, "also run the replay test: a connection misses this many messages, reconnects and syncs from its last seq")
	flag.IntVar(&o.repeat, "repeat", 7, "replay test: how many times (the median is reported)")
	pids := flag.String("pids", "", "comma-separated pids of server processes (chatd, redis-server, …) whose CPU per acked message to report")
	flag.StringVar(&o.pgdb, "pgdb", "", "also count the CPU of the Postgres backends connected to this database (found in /proc)")
	flag.BoolVar(&o.jsonOut, "json", false, "print the results as JSON on stdout (progress goes to stderr)")
	flag.StringVar(&o.plot, "plot", "", "write an SVG of ack latency over time and its CDF to this file")
	flag.IntVar(&o.setupConc, "setup-concurrency", 8, "parallel account registrations during setup")
	flag.IntVar(&o.bodyFiller, "body", 0, "extra bytes of text in each message body")
	flag.Parse()

	var err error
	if o.rates, err = parseList(*rate, strconv.ParseFloat); err != nil {
		fail(fmt.Errorf("-rate: %w", err))
	}
	if o.windows, err = parseList(*window, func(s string, _ int) (int, error) { return strconv.Atoi(s) }); err != nil {
		fail(fmt.Errorf("-window: %w", err))
	}
	if o.pids, err = parseList(*pids, func(s string, _ int) (int, error) { return strconv.Atoi(s) }); err != nil {
		fail(fmt.Errorf("-pids: %w", err))
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	// With a window given, the open-loop phases run only if -rate was
	// given too; without one, -rate alone (or its default) decides.
	var closed []int
	for _, w := range o.windows {
		if w > 0 {
			closed = append(closed, w)
		}
	}
	o.windows = closed
	if len(closed) > 0 && !set["rate"] {
		o.rates = nil
	}
	// -replay alone runs only the replay test.
	if set["replay"] && !set["rate"] && !set["window"] {
		o.rates = nil
	}
	go interruptible()
	res, err := run(o)
	if err != nil {
		fail(err)
	}
	if o.plot != "" {
		if err := writePlot(o.plot, res); err != nil {
			fail(fmt.Errorf("plot: %w", err))
		}
	}
	if o.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	} else {
		printSummary(os.Stdout, res)
	}
}

// interrupted is closed by the first SIGINT or SIGTERM: it ends the phase
// that is sending (its results are reported as usual), so that a script can
// keep load going exactly as long as something else runs. A second signal
// exits at once.
var interrupted = make(chan struct{})

func interruptible() {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	close(interrupted)
	<-sig
	os.Exit(130)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "loadgen:", err)
	os.Exit(1)
}

func parseList[T any](s string, parse func(string, int) (T, error)) ([]T, error) {
	var out []T
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := parse(f, 64)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// progress is where the once-a-second lines go: stderr, so that -json's
// stdout stays parseable.
var progress io.Writer = os.Stderr

func logf(format string, args ...any) {
	fmt.Fprintf(progress, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// results is everything a run measured; it is what -json prints.
type results struct {
	URL     string         `json:"url"`
	Conns   int            `json:"conns"`
	Convs   int            `json:"convs"`
	Started time.Time      `json:"started"`
	Phases  []*phaseResult `json:"phases,omitempty"`
	Replay  *replayResult  `json:"replay,omitempty"`
	Idle    *idleResult    `json:"idle,omitempty"`
}

func run(o options) (*results, error) {
	res := &results{URL: o.base, Conns: o.conns - o.conns%2, Convs: o.conns / 2, Started: time.Now().UTC()}
	if o.idle > 0 {
		r, err := idleRun(o)
		res.Idle = r
		return res, err
	}
	if len(o.windows)+len(o.rates) > 0 {
		peers, err := setupPeers(o, "lg", o.conns, o.convs)
		if err != nil {
			return nil, err
		}
		defer closePeers(peers)
		for _, w := range o.windows {
			r, err := runPhase(o, peers, phaseSpec{window: w})
			if err != nil {
				return res, err
			}
			res.Phases = append(res.Phases, r)
		}
		for _, rt := range o.rates {
			r, err := runPhase(o, peers, phaseSpec{rate: rt})
			if err != nil {
				return res, err
			}
			res.Phases = append(res.Phases, r)
		}
	}
	if o.replay > 0 {
		r, err := replayRun(o)
		if err != nil {
			return res, err
		}
		res.Replay = r
	}
	return res, nil
}
