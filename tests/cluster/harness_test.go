package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/seqchat/seqchat/internal/testenv"
)

// proc is one OS process of the deployment, restartable with the same
// command line, environment and addresses.
type proc struct {
	name string
	bin  string
	args []string
	env  []string
	addr string // its HTTP address (health, metrics, REST or /v1/ws), if any
	log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *proc) start(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n===== %s start %s\n", time.Now().Format(time.RFC3339Nano), p.name)
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(f, "\n===== %s exit %s: %v\n", time.Now().Format(time.RFC3339Nano), p.name, err)
		f.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
}

// signal sends sig to the process (not its group: these binaries start no
// children) and, for SIGKILL and SIGTERM, waits for it to exit.
func (p *proc) signal(t testing.TB, sig syscall.Signal, wait time.Duration) {
	t.Helper()
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		<-done
		t.Logf("%s did not exit within %v of %v; killed", p.name, wait, sig)
	}
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		<-done
	}
}

func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitHTTP waits until GET path on the process answers 200.
func (p *proc) waitHTTP(t testing.TB, path string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := c.Get("http://" + p.addr + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not ready after %v (last: %v)\n%s", p.name, path, d, err, p.tail(30))
		}
		if !p.running() {
			t.Fatalf("%s exited while starting:\n%s", p.name, p.tail(40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// build compiles the role binaries and nats-server into dir.
func build(t testing.TB, dir string) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, args := range [][]string{
		{"build", "-o", dir + "/", "./cmd/api", "./cmd/edge", "./cmd/sequencer", "./cmd/projector", "./cmd/chatd"},
		{"build", "-o", filepath.Join(dir, "nats-server"), "github.com/nats-io/nats-server/v2"},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	t.Logf("built the binaries in %v", time.Since(start).Round(time.Millisecond))
}

// baseEnv is this process's environment without any CHAT_ setting.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CHAT_") {
			env = append(env, kv)
		}
	}
	return env
}

// natsNode is one server of the JetStream cluster.
type natsNode struct {
	*proc
	serverName string
	clientURL  string
}

// Cluster is the whole split deployment.
type Cluster struct {
	t       testing.TB
	dir     string
	bins    string
	nats    []*natsNode
	natsURL string

	redis    *proc
	redisURL string
	prefix   string

	pgURL  string
	dbName string

	api   *proc
	edges []*proc
	seqs  []*proc
	projs []*proc

	secret string
	hook   *hookReceiver // every projector's webhook URL
}

// roles lists the chat processes (not NATS or Redis).
func (c *Cluster) roles() []*proc {
	out := []*proc{c.api}
	out = append(out, c.seqs...)
	out = append(out, c.projs...)
	return append(out, c.edges...)
}

func (c *Cluster) all() []*proc {
	out := c.roles()
	for _, n := range c.nats {
		out = append(out, n.proc)
	}
	return append(out, c.redis)
}

// dumpLogs prints the tail of every process's log.
func (c *Cluster) dumpLogs(n int) {
	for _, p := range c.all() {
		if p != nil {
			c.t.Logf("----- %s (%s) -----\n%s", p.name, p.log, p.tail(n))
		}
	}
}

func startCluster(t *testing.T, bins string) *Cluster {
	dir := t.TempDir()
	c := &Cluster{t: t, dir: dir, bins: bins, prefix: "seqchat:", secret: "cluster-test-secret-" + testenv.Name("")}
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs(40)
			// Keep the histories and logs: the temp dir goes with the test.
			keep := filepath.Join(os.TempDir(), "seqchat-cluster-"+time.Now().Format("20060102-150405"))
			if os.MkdirAll(keep, 0o755) == nil {
				for _, pat := range []string{"*.jsonl", "*.log"} {
					files, _ := filepath.Glob(filepath.Join(dir, pat))
					for _, f := range files {
						if b, err := os.ReadFile(f); err == nil {
							_ = os.WriteFile(filepath.Join(keep, filepath.Base(f)), b, 0o644)
						}
					}
				}
				t.Logf("histories and process logs kept in %s", keep)
			}
		}
		for _, p := range c.all() {
			if p != nil {
				p.stop()
			}
		}
	})

	// Three NATS servers in one JetStream cluster.
	type ports struct{ client, cluster, http int }
	ps := make([]ports, 3)
	for i := range ps {
		ps[i] = ports{freePort(t), freePort(t), freePort(t)}
	}
	var routes, urls []string
	for _, p := range ps {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p.cluster))
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", p.client))
	}
	c.natsURL = strings.Join(urls, ",")
	for i, p := range ps {
		name := fmt.Sprintf("nats-%d", i+1)
		conf := filepath.Join(dir, name+".conf")
		cfg := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
jetstream {
  store_dir: %q
  max_memory_store: 1GB
  max_file_store: 8GB
}
cluster {
  name: seqchat
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, name, p.client, p.http, filepath.Join(dir, name+"-data"), p.cluster, strings.Join(routes, ", "))
		if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		n := &natsNode{proc: &proc{name: name, bin: filepath.Join(bins, "nats-server"), args: []string{"-c", conf},
			env: baseEnv(), addr: fmt.Sprintf("127.0.0.1:%d", p.http), log: filepath.Join(dir, name+".log")},
			serverName: name, clientURL: urls[i]}
		c.nats = append(c.nats, n)
		n.start(t)
	}
	c.waitJetStream(60 * time.Second)

	// Redis of its own.
	rport := freePort(t)
	c.redisURL = fmt.Sprintf("redis://127.0.0.1:%d/0", rport)
	c.redis = &proc{name: "redis", bin: "/usr/bin/redis-server", env: baseEnv(), log: filepath.Join(dir, "redis.log"),
		args: []string{"--port", fmt.Sprint(rport), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir}}
	c.startRedis()

	// Postgres database of its own.
	c.pgURL = testenv.Postgres(t)
	c.dbName = c.pgURL[strings.LastIndex(c.pgURL, "/")+1:]
	if i := strings.Index(c.dbName, "?"); i >= 0 {
		c.dbName = c.dbName[:i]
	}

	c.hook = newHookReceiver(t)
	mk := func(name, role string) *proc {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		env := append(baseEnv(),
			"CHAT_HTTP_ADDR="+addr,
			"CHAT_NATS_URL="+c.natsURL,
			"CHAT_STREAM_REPLICAS=3",
			"CHAT_POSTGRES_URL="+c.pgURL,
			"CHAT_REDIS_URL="+c.redisURL,
			"CHAT_REDIS_PREFIX="+c.prefix,
			"CHAT_TOKEN_SECRET="+c.secret,
			"CHAT_INSTANCE_ID="+name,
			"CHAT_PARTITIONS=4",
			"CHAT_RATE_LIMITS=off",
			"CHAT_LEASE_TTL=2s",
			"CHAT_PASSWORD_COST=4",
			"CHAT_SHUTDOWN_TIMEOUT=5s",
			"CHAT_DATA_DIR="+filepath.Join(dir, name+"-data"),
			"CHAT_WEBHOOK_URLS="+c.hook.srv.URL,
			"CHAT_WEBHOOK_SECRET="+hookSecret,
		)
		return &proc{name: name, bin: filepath.Join(bins, role), env: env, addr: addr, log: filepath.Join(dir, name+".log")}
	}
	// The api first: it creates the streams, so the others find them.
	c.api = mk("api-1", "api")
	c.api.start(t)
	c.api.waitHTTP(t, "/readyz", 90*time.Second)
	for i := 1; i <= 2; i++ {
		c.seqs = append(c.seqs, mk(fmt.Sprintf("sequencer-%d", i), "sequencer"))
		c.projs = append(c.projs, mk(fmt.Sprintf("projector-%d", i), "projector"))
		c.edges = append(c.edges, mk(fmt.Sprintf("edge-%d", i), "edge"))
	}
	for _, p := range c.roles()[1:] {
		p.start(t)
	}
	for _, p := range c.roles() {
		p.waitHTTP(t, "/readyz", 90*time.Second)
	}
	return c
}

func (c *Cluster) startRedis() {
	c.redis.start(c.t)
	opt, _ := redis.ParseURL(c.redisURL)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	deadline := time.Now().Add(20 * time.Second)
	for rdb.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			c.t.Fatalf("redis did not start:\n%s", c.redis.tail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// js connects to the NATS cluster.
func (c *Cluster) js() (*nats.Conn, jetstream.JetStream) {
	nc, err := nats.Connect(c.natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		c.t.Fatalf("connect to nats: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatal(err)
	}
	return nc, js
}

// waitJetStream waits until the cluster answers JetStream requests (a meta
// leader is elected).
func (c *Cluster) waitJetStream(d time.Duration) {
	deadline := time.Now().Add(d)
	for {
		nc, err := nats.Connect(c.natsURL)
		if err == nil {
			js, _ := jetstream.New(nc)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err = js.AccountInfo(ctx)
			cancel()
			nc.Close()
			if err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("JetStream cluster not ready after %v: %v", d, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// streamLeader names the NATS server leading TIMELINE.
func (c *Cluster) streamLeader(stream string) string {
	nc, js := c.js()
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return ""
	}
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil {
		return ""
	}
	return info.Cluster.Leader
}

// waitStreamCurrent waits until every replica of the stream is current
// again (after a NATS node came back).
func (c *Cluster) waitStreamCurrent(stream string, d time.Duration) bool {
	nc, js := c.js()
	defer nc.Close()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		s, err := js.Stream(ctx, stream)
		if err == nil {
			var info *jetstream.StreamInfo
			if info, err = s.Info(ctx); err == nil && info.Cluster != nil && info.Cluster.Leader != "" && len(info.Cluster.Replicas) == 2 {
				ok := true
				for _, r := range info.Cluster.Replicas {
					ok = ok && r.Current && !r.Offline
				}
				if ok {
					cancel()
					return true
				}
			}
		}
		cancel()
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

// leaseHolder reads who holds a lease in SEQ_LEASES ("" if nobody).
func (c *Cluster) leaseHolder(key string) string {
	nc, js := c.js()
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, "SEQ_LEASES")
	if err != nil {
		return ""
	}
	e, err := kv.Get(ctx, key)
	if err != nil {
		return ""
	}
	return string(e.Value())
}

// procByName finds a chat process by instance name.
func (c *Cluster) procByName(name string) *proc {
	for _, p := range c.roles() {
		if p.name == name {
			return p
		}
	}
	return nil
}

func (c *Cluster) edgeAddrs() []string {
	var out []string
	for _, e := range c.edges {
		out = append(out, e.addr)
	}
	return out
}

// pgAdmin runs a statement on the maintenance database.
func pgAdmin(ctx context.Context, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, testenv.PostgresAdminURL())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// rest calls the api.
func rest(base, method, path, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+base+path, body)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// metric reads one sample's value (the sum over its label sets) from a
// process's /metrics.
func metric(addr, name string) (float64, bool) {
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
			continue
		}
		rest := line[len(name):]
		if rest != "" && rest[0] != ' ' && rest[0] != '{' {
			continue
		}
		f := strings.Fields(line)
		var v float64
		if _, err := fmt.Sscan(f[len(f)-1], &v); err == nil {
			sum += v
			found = true
		}
	}
	return sum, found
}
