package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/tests/check/checker"
)

const clientsPerScenario = 50 // in 25 direct conversations

// fault is what a scenario does to the running cluster while clients chat.
// It returns when the fault has healed.
type fault struct {
	name string
	// outage: during [at, healed) the store was unreachable, and connected
	// members must still have got acks and live events.
	outage bool
	do     func(t *testing.T, c *Cluster, tr *traffic) (at, healed time.Time)
}

// result is one scenario's figures, for the summary.
type result struct {
	name                  string
	report                *checker.Report
	firstAck, allAcked    time.Duration
	firstEvent            time.Duration
	stall                 time.Duration
	outageAcks, outageEvs int
	outage                time.Duration
	unacked               int
}

func TestCluster(t *testing.T) {
	if testing.Short() || os.Getenv("CHAT_CLUSTER_TESTS") == "" {
		t.Skip("multi-process cluster tests: set CHAT_CLUSTER_TESTS=1 (and no -short) to run them")
	}
	bins := t.TempDir()
	build(t, bins)
	start := time.Now()
	c := startCluster(t, bins)
	t.Logf("cluster up in %v: NATS %s, redis %s, postgres db %s", time.Since(start).Round(time.Millisecond), c.natsURL, c.redisURL, c.dbName)

	faults := []fault{
		{name: "kill-sequencer", do: killSequencer},
		{name: "kill-projector", do: killProjector},
		{name: "kill-webhook-projector", do: killWebhookProjector},
		{name: "kill-edge", do: killEdge},
		{name: "restart-redis", outage: true, do: restartRedis},
		{name: "postgres-outage", outage: true, do: postgresOutage},
		{name: "rolling-restart", do: rollingRestart},
		// Last: what it breaks (see docs/operations.md, open issues) would
		// otherwise leave the scenarios after it without a working cluster.
		{name: "kill-nats-node", do: killNATSNode},
	}
	// The split deployment's throughput, measured first, on a whole cluster.
	var split throughput
	t.Run("throughput-split", func(t *testing.T) {
		split = measure(t, "split", c.api.addr, c.edgeAddrs())
	})

	var results []result
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			results = append(results, runScenario(t, c, f))
		})
	}

	t.Run("throughput-one-process", func(t *testing.T) {
		// The same load against the one-process mode, alone on the machine.
		for _, p := range c.all() {
			if p != c.redis {
				p.stop()
			}
		}
		one := startChatd(t, c)
		single := measure(t, "one-process", one.addr, []string{one.addr})
		t.Logf("throughput under %d msgs/s offered for %v: split (3 NATS R3, 2 of each role) %.0f acked msgs/s, ack p50 %v p99 %v; one-process (chatd) %.0f acked msgs/s, ack p50 %v p99 %v",
			split.offered, split.dur, split.rate, split.p50, split.p99, single.rate, single.p50, single.p99)
	})

	t.Run("kill-one-process", func(t *testing.T) {
		// The one-process mode with its embedded JetStream, where the
		// history and unread projectors take their events from the
		// sequencer in memory (timeline.RunFed): SIGKILL under traffic,
		// start again on the same data, and every acked message is in
		// the history and the unread counts, checked from outside.
		for _, p := range c.all() {
			if p != c.redis {
				p.stop()
			}
		}
		one := startChatd(t, c)
		// Its TIMELINE is its embedded server's, on a port of its own
		// choosing each time it starts.
		to := target{api: one.addr, edges: []string{one.addr}, src: func(t *testing.T) checker.Sources {
			return checker.Sources{NATS: embeddedNATS(t, one), Postgres: one.getenv("CHAT_POSTGRES_URL"), Redis: c.redisURL, RedisPrefix: one.getenv("CHAT_REDIS_PREFIX")}
		}}
		results = append(results, runScenarioOn(t, c, to, fault{name: "kill-one-process", do: killOneProcess(one)}))
	})

	var b strings.Builder
	fmt.Fprintf(&b, "\n%-16s %-10s %-10s %-10s %-9s %-7s %-22s %s\n", "scenario", "first-ack", "all-acked", "live-evt", "stall", "unacked", "outage acks/events", "checker")
	for _, r := range results {
		out := "-"
		if r.outage > 0 {
			out = fmt.Sprintf("%d/%d in %v", r.outageAcks, r.outageEvs, r.outage.Round(100*time.Millisecond))
		}
		sum := "not run"
		if r.report != nil {
			sum = r.report.Summary()
		}
		fmt.Fprintf(&b, "%-16s %-10v %-10v %-10v %-9v %-7d %-22s %s\n", r.name, r.firstAck.Round(time.Millisecond), r.allAcked.Round(time.Millisecond),
			r.firstEvent.Round(time.Millisecond), r.stall.Round(time.Millisecond), r.unacked, out, sum)
	}
	t.Log(b.String())
}

// target is what a scenario's clients talk to and where the checker reads
// the projections (and TIMELINE, if NATS is set).
type target struct {
	api   string
	edges []string
	src   func(t *testing.T) checker.Sources // asked when the check begins
}

// target is the cluster's.
func (c *Cluster) target() target {
	src := checker.Sources{NATS: c.natsURL, Postgres: c.pgURL, Redis: c.redisURL, RedisPrefix: c.prefix}
	return target{api: c.api.addr, edges: c.edgeAddrs(), src: func(*testing.T) checker.Sources { return src }}
}

func runScenario(t *testing.T, c *Cluster, f fault) result { return runScenarioOn(t, c, c.target(), f) }

// runScenarioOn runs f while clients chat through to, then checks what
// was acked against to's stores.
func runScenarioOn(t *testing.T, c *Cluster, to target, f fault) result {
	res := result{name: f.name}
	users := makeUsers(t, to.api, strings.ReplaceAll(testenv.Name(f.name[:4]), "-", ""), clientsPerScenario)
	histPath := filepath.Join(c.dir, f.name+".jsonl")
	rec := newRecorder(t, histPath)
	tr := startTraffic(users, to.edges, rec, defaultLoad)
	defer tr.finish(time.Second)

	// Warm up: every client has been acked at least once.
	waitFor(t, 60*time.Second, "every client acked before the fault", func() bool {
		_, all := tr.acks.recovery(tr.started)
		return countClients(tr.acks, tr.started) == len(users) && all > 0
	})
	at, healed := f.do(t, c, tr)
	// Let the healed system carry traffic for a while before finishing.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if a, _ := tr.acks.between(healed, time.Now()); a >= 300 && time.Since(healed) > 3*time.Second {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("fewer than 300 acks within 60s after the fault healed")
			break
		}
	}
	res.unacked = tr.finish(120 * time.Second)
	end := time.Now()
	res.firstAck, res.allAcked = tr.acks.recovery(at)
	res.firstEvent = tr.acks.firstEvent(at)
	res.stall = tr.acks.maxStall(tr.started, end)
	if f.outage {
		res.outage = healed.Sub(at)
		res.outageAcks, res.outageEvs = tr.acks.between(at, healed)
	}
	t.Logf("%s: recovery: first ack %v after the fault, every client acked again after %v, first live event after %v; longest stall of one client %v",
		f.name, res.firstAck.Round(time.Millisecond), res.allAcked.Round(time.Millisecond), res.firstEvent.Round(time.Millisecond), res.stall.Round(time.Millisecond))
	if f.outage {
		t.Logf("%s: during the %v outage: %d acks, %d live events", f.name, res.outage.Round(time.Millisecond), res.outageAcks, res.outageEvs)
		if res.outageAcks == 0 || res.outageEvs == 0 {
			t.Errorf("%s: availability: connected members got %d acks and %d live events during the outage; want both > 0", f.name, res.outageAcks, res.outageEvs)
		}
	}
	if res.unacked > 0 {
		t.Errorf("%s: %d messages still unacked %v after the traffic stopped", f.name, res.unacked, 120*time.Second)
	}

	rec.close()
	res.report = check(t, rec.snapshot(), histPath, to.src(t))
	return res
}

// check runs the checker on a history against src, polling until the
// projections have caught up (or a deadline passes), and fails the test on
// any violation.
func check(t *testing.T, hist []checker.Record, histPath string, src checker.Sources) *checker.Report {
	convs := checker.Convs(hist)
	src.Convs = convs
	var rep *checker.Report
	deadline := time.Now().Add(90 * time.Second)
	start := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		st, err := checker.LoadState(ctx, src)
		cancel()
		if err == nil {
			rep = checker.Check(hist, st, checker.Options{Convs: convs})
			if rep.Total(checker.HistoryMismatch, checker.UnreadMismatch) == 0 {
				break
			}
		} else {
			t.Logf("load state: %v", err)
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if rep == nil {
		t.Fatalf("could not load the state for the checker")
	}
	t.Logf("checker (projections settled after %v; replay with: go run ./tests/check -history %s -nats '%s' -postgres '%s' -redis %s -redis-prefix %s -only-history-convs):\n%s",
		time.Since(start).Round(time.Millisecond), histPath, src.NATS, src.Postgres, src.Redis, src.RedisPrefix, rep)
	if !rep.OK() {
		t.Errorf("checker found %d violations: %s", rep.Total(), rep.Summary())
	}
	if rep.Stats.Acked == 0 {
		t.Errorf("no acked message at all")
	}
	return rep
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func countClients(l *ackLog, from time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := map[string]bool{}
	for _, a := range l.acks {
		if !a.at.Before(from) {
			seen[a.client] = true
		}
	}
	return len(seen)
}

// waitAllAcked waits until every client has been acked after t0. A timeout
// fails the test but returns, so the fault is still undone and the later
// scenarios get a whole cluster.
func waitAllAcked(t *testing.T, tr *traffic, t0 time.Time, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for countClients(tr.acks, t0) < len(tr.clients) {
		if time.Now().After(deadline) {
			t.Errorf("availability: %d of %d clients got no ack within %v of the fault", len(tr.clients)-countClients(tr.acks, t0), len(tr.clients), d)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ----------------------------------------------------------------- faults --

func killSequencer(t *testing.T, c *Cluster, tr *traffic) (time.Time, time.Time) {
	victim := c.seqs[0]
	owners := map[string]int{}
	for p := 0; p < 4; p++ {
		owners[c.leaseHolder(fmt.Sprintf("p%d", p))]++
	}
	for name, n := range owners {
		if p := c.procByName(name); p != nil && n > 0 {
			victim = p
			break
		}
	}
	t.Logf("partition leases: %v; SIGKILL %s", owners, victim.name)
	at := time.Now()
	victim.signal(t, syscall.SIGKILL, 10*time.Second)
	waitAllAcked(t, tr, at, 60*time.Second)
	victim.start(t)
	victim.waitHTTP(t, "/readyz", 60*time.Second)
	return at, time.Now()
}

func killProjector(t *testing.T, c *Cluster, tr *traffic) (time.Time, time.Time) {
	holders := map[string]string{}
	for _, k := range []string{"history", "unread", "fanout"} {
		holders[k] = c.leaseHolder("projector-" + k)
	}
	victim := c.procByName(holders["fanout"])
	if victim == nil {
		victim = c.projs[0]
	}
	t.Logf("projector leases: %v; SIGKILL %s", holders, victim.name)
	at := time.Now()
	victim.signal(t, syscall.SIGKILL, 10*time.Second)
	// Live events flow again once the standby holds the fanout lease.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, evs := tr.acks.between(at.Add(100*time.Millisecond), time.Now()); evs > 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("no live events within 60s of the projector kill")
			break
		}
	}
	victim.start(t)
	victim.waitHTTP(t, "/readyz", 60*time.Second)
	return at, time.Now()
}

func killEdge(t *testing.T, c *Cluster, tr *traffic) (time.Time, time.Time) {
	victim := c.edges[0]
	n, _ := metric(victim.addr, "chat_edge_connections")
	t.Logf("SIGKILL %s (%v connections)", victim.name, n)
	at := time.Now()
	victim.signal(t, syscall.SIGKILL, 10*time.Second)
	waitAllAcked(t, tr, at, 60*time.Second)
	victim.start(t)
	victim.waitHTTP(t, "/readyz", 60*time.Second)
	return at, time.Now()
}

func killNATSNode(t *testing.T, c *Cluster, tr *traffic) (time.Time, time.Time) {
	leader := c.streamLeader("TIMELINE")
	victim := c.nats[1]
	for _, n := range c.nats {
		if n.serverName == leader {
			victim = n
		}
	}
	t.Logf("TIMELINE leader %q; SIGKILL %s", leader, victim.name)
	at := time.Now()
	victim.signal(t, syscall.SIGKILL, 10*time.Second)
	waitAllAcked(t, tr, at, 90*time.Second)
	t.Logf("every client acked again after %v; restarting %s", time.Since(at).Round(time.Millisecond), victim.name)
	victim.start(t)
	victim.waitHTTP(t, "/healthz?js-enabled-only=true", 60*time.Second)
	for _, s := range []string{"TIMELINE", "CMDS"} {
		if !c.waitStreamCurrent(s, 90*time.Second) {
			t.Errorf("%s: replicas not current %v after %s came back", s, 90*time.Second, victim.name)
		}
	}
	t.Logf("TIMELINE leader now %q", c.streamLeader("TIMELINE"))
	return at, time.Now()
}

// outageFor is how long the Redis and Postgres outages last.
const outageFor = 6 * time.Second

func restartRedis(t *testing.T, c *Cluster, tr *traffic) (time.Time, time.Time) {
	at := time.Now()
	c.redis.signal(t, syscall.SIGKILL, 10*time.Second)
	t.Logf("redis killed; its data (no persistence) is gone")
	time.Sleep(outageFor) // the outage itself, not an assertion
	healed := time.Now()
	c.startRedis()
	t.Logf("redis back after %v", time.Since(at).Round(time.Millisecond))
	return at, healed
}

func postgresOutage(t *testing.T, c *Cluster, tr *traffic) (time.Time, time.Time) {
	ctx := context.Background()
	if err := pgAdmin(ctx, "ALTER DATABASE "+c.dbName+" WITH ALLOW_CONNECTIONS false"); err != nil {
		t.Fatalf("block database: %v", err)
	}
	at := time.Now()
	terminate := func() {
		if err := pgAdmin(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", c.dbName); err != nil {
			t.Errorf("terminate backends: %v", err)
		}
	}
	terminate()
	for time.Since(at) < outageFor { // the outage itself, not an assertion
		time.Sleep(500 * time.Millisecond)
		terminate()
	}
	healed := time.Now()
	if err := pgAdmin(ctx, "ALTER DATABASE "+c.dbName+" WITH ALLOW_CONNECTIONS true"); err != nil {
		t.Fatalf("unblock database: %v", err)
	}
	t.Logf("postgres database %s unreachable for %v", c.dbName, healed.Sub(at).Round(time.Millisecond))
	return at, healed
}

func rollingRestart(t *testing.T, c *Cluster, tr *traffic) (time.Time, time.Time) {
	at := time.Now()
	for _, p := range append(append(append(append([]*proc(nil), c.seqs...), c.projs...), c.edges...), c.api) {
		t0 := time.Now()
		p.signal(t, syscall.SIGTERM, 20*time.Second)
		stopped := time.Since(t0)
		p.start(t)
		p.waitHTTP(t, "/readyz", 60*time.Second)
		t.Logf("rolling restart: %s stopped in %v, ready again after %v", p.name, stopped.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	}
	return at, time.Now()
}

// ------------------------------------------------------------- throughput --

type throughput struct {
	offered  int
	dur      time.Duration
	rate     float64
	p50, p99 time.Duration
}

// measure offers the same fixed load to a deployment: 100 clients in 50
// direct conversations, 1500 messages per second together
// (CHAT_CLUSTER_RATE sets another rate, to find where the deployment
// saturates), for 8 seconds.
func measure(t *testing.T, name, api string, edges []string) throughput {
	const clients, dur = 100, 8 * time.Second
	rate := 1500
	if v := os.Getenv("CHAT_CLUSTER_RATE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < clients {
			t.Fatalf("CHAT_CLUSTER_RATE=%q: want a number of messages per second, at least %d", v, clients)
		}
		rate = n
	}
	users := makeUsers(t, api, strings.ReplaceAll(testenv.Name("tp"), "-", ""), clients)
	rec := newRecorder(t, filepath.Join(t.TempDir(), name+".jsonl"))
	ld := load{interval: time.Second * clients / time.Duration(rate), window: 64, resendAfter: 10 * time.Second, finishTimeout: 60 * time.Second}
	tr := startTraffic(users, edges, rec, ld)
	waitFor(t, 60*time.Second, "first acks", func() bool { return countClients(tr.acks, tr.started) == clients })
	from := time.Now()
	time.Sleep(dur) // the measurement window
	to := time.Now()
	unacked := tr.finish(60 * time.Second)
	acks, _ := tr.acks.between(from, to)
	tp := throughput{offered: rate, dur: dur, rate: float64(acks) / to.Sub(from).Seconds(), p50: tr.acks.latency(50), p99: tr.acks.latency(99)}
	t.Logf("%s: %d acked in %v = %.0f msgs/s (offered %d/s), ack latency p50 %v p99 %v, %d unacked at the end",
		name, acks, to.Sub(from).Round(time.Millisecond), tp.rate, rate, tp.p50, tp.p99, unacked)
	return tp
}

// startChatd runs the one-process mode (embedded JetStream) beside the
// cluster's Redis, on a database of its own.
// startChatd starts a one-process chatd with stores of its own (data
// directory, database, Redis prefix): an old TIMELINE beside a new
// database would hold conversations the database does not know.
func startChatd(t *testing.T, c *Cluster) *proc {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	dir, err := os.MkdirTemp(c.dir, "chatd-")
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{name: "chatd", bin: filepath.Join(c.bins, "chatd"), addr: addr, log: filepath.Join(dir, "chatd.log"),
		env: append(baseEnv(),
			"CHAT_HTTP_ADDR="+addr,
			"CHAT_POSTGRES_URL="+testenv.Postgres(t),
			"CHAT_REDIS_URL="+c.redisURL,
			"CHAT_REDIS_PREFIX="+testenv.Name("chatd")+":",
			"CHAT_DATA_DIR="+filepath.Join(dir, "data"),
			"CHAT_TOKEN_SECRET="+c.secret,
			"CHAT_RATE_LIMITS=off",
			"CHAT_PASSWORD_COST=4",
		)}
	p.start(t)
	t.Cleanup(p.stop)
	p.waitHTTP(t, "/readyz", 90*time.Second)
	return p
}

// killOneProcess is a fault for one chatd: SIGKILL, then start it again
// on the same data directory.
func killOneProcess(one *proc) func(t *testing.T, c *Cluster, tr *traffic) (time.Time, time.Time) {
	return func(t *testing.T, c *Cluster, tr *traffic) (time.Time, time.Time) {
		at := time.Now()
		one.signal(t, syscall.SIGKILL, 10*time.Second)
		one.start(t)
		one.waitHTTP(t, "/readyz", 90*time.Second)
		return at, time.Now()
	}
}

// embeddedNATS is the URL of the embedded JetStream of a running chatd, as
// its last start logged it.
func embeddedNATS(t *testing.T, p *proc) string {
	t.Helper()
	b, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	url := ""
	for _, line := range strings.Split(string(b), "\n") {
		var l struct {
			Msg string `json:"msg"`
			URL string `json:"url"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "embedded JetStream started" {
			url = l.URL
		}
	}
	if url == "" {
		t.Fatalf("%s logged no embedded JetStream URL", p.name)
	}
	return url
}

// getenv is the value p was started with for key.
func (p *proc) getenv(key string) string {
	v := ""
	for _, kv := range p.env {
		if after, ok := strings.CutPrefix(kv, key+"="); ok {
			v = after
		}
	}
	return v
}
