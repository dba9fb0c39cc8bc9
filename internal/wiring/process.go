package wiring

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/seqchat/seqchat/internal/activity"
	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/internal/postgres"
	"github.com/seqchat/seqchat/internal/projector/fanout"
	"github.com/seqchat/seqchat/internal/receipts"
	"github.com/seqchat/seqchat/internal/sequencer"
	"github.com/seqchat/seqchat/internal/serve"
	"github.com/seqchat/seqchat/timeline"
	"github.com/seqchat/seqchat/unread"
)

// process is what Start builds up: the connections and the stores every
// role shares, the HTTP mux the roles mount on, and what runs and what
// closes while the process lives.
type process struct {
	cfg  config.Config
	log  *slog.Logger
	nc   *timeline.Conn
	pool *postgres.Pool
	rdb  *redis.Client
	reg  *prometheus.Registry
	mux  *http.ServeMux

	hist    *postgres.History
	unreads *unread.Store
	reads   *receipts.Service
	pres    *activity.Presence
	// fanout is this process's fanout projector, if it runs one: an edge
	// in the same process takes its deliveries directly.
	fanout *fanout.Projector
	// seq is this process's sequencer, if it runs one: the command client
	// in the same process takes its answers directly.
	seq *sequencer.Sequencer

	runs    []func(context.Context) error
	closers []func()
}

// run adds work that runs until the process stops.
func (p *process) run(runs ...func(context.Context) error) { p.runs = append(p.runs, runs...) }

// onClose adds what to close once the work has stopped, in reverse order.
func (p *process) onClose(f func()) { p.closers = append(p.closers, f) }

func (p *process) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
	p.closers = nil
}

// connect opens NATS (creating the streams), Postgres and Redis, the
// stores on them every role reads, and the health and metrics endpoints.
func connect(ctx context.Context, cfg config.Config, log *slog.Logger) (*process, error) {
	p := &process{cfg: cfg, log: log, reg: serve.NewRegistry(), mux: http.NewServeMux()}
	fail := func(err error) (*process, error) { p.close(); return nil, err }
	nc, err := timeline.Connect(ctx, cfg.NATSURL, cfg.DataDir, streamSync(cfg), "chat-"+cfg.InstanceID, log)
	if err != nil {
		return fail(err)
	}
	p.nc = nc
	p.onClose(nc.Close)
	nc.Register(p.reg)
	if cfg.NATSURL != "" {
		log.Info("durability: TIMELINE is synced to disk as the NATS servers' jetstream sync_interval says (CHAT_STREAM_SYNC applies to the embedded server only); see docs/operations.md, Durability", "replicas", cfg.StreamReplicas)
	}
	if err := ensureStreams(ctx, nc, cfg, log); err != nil {
		return fail(err)
	}
	if p.pool, err = openPostgres(ctx, cfg.PostgresURL, log); err != nil {
		return fail(err)
	}
	p.onClose(p.pool.Close)
	if p.rdb, err = openRedis(cfg.RedisURL); err != nil {
		return fail(err)
	}
	p.onClose(func() { p.rdb.Close() })
	serve.Mount(p.mux, p.reg, []serve.Check{
		{Name: "jetstream", Fn: func(ctx context.Context) error {
			_, err := nc.JS.AccountInfo(ctx)
			return err
		}},
		{Name: "postgres", Fn: p.pool.Ping},
		{Name: "redis", Fn: func(ctx context.Context) error { return p.rdb.Ping(ctx).Err() }},
	})
	p.unreads = unread.New(p.rdb, cfg.RedisPrefix)
	p.hist = postgres.NewHistory(p.pool, timeline.New(nc.NC, nc.JS)) // stateless: one for every role
	p.reads = receipts.New(postgres.NewReadPointers(p.pool), p.hist, p.unreads, nil)
	p.pres = activity.NewPresence(p.rdb, cfg.RedisPrefix, activity.PresenceTTL(cfg.PresenceHeartbeat))
	// The fanout projector keeps presence in memory; a new connection is
	// announced to it before the edge lets the connection sync.
	p.pres.OnConnect(fanout.AnnounceConnect(nc.NC))
	return p, nil
}

func openRedis(url string) (*redis.Client, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("parse redis url: %w", err)
	}
	return redis.NewClient(opt), nil
}

// ensureStreams creates or updates the streams. Several roles starting at
// once on a fresh cluster find it still electing its leaders: Ensure
// retries that by itself, and each 20 seconds without success is logged.
func ensureStreams(ctx context.Context, nc *timeline.Conn, cfg config.Config, log *slog.Logger) error {
	settings := streamSettings(cfg)
	return untilUp(ctx, log, "jetstream", func() error {
		actx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		return timeline.Ensure(actx, nc.JS, settings)
	})
}

// streamSettings are the streams' settings cfg asks for.
func streamSettings(cfg config.Config) timeline.Settings {
	return timeline.Settings{
		Replicas: cfg.StreamReplicas, Storage: cfg.StreamStorage, MaxAge: cfg.TimelineMaxAge,
		DuplicateWindow: cfg.DuplicateWindow, DedupeTTL: cfg.DedupeTTL, LeaseTTL: cfg.LeaseTTL,
		FastBatches: cfg.Pipelined(),
	}
}

// openPostgres opens the pool, waiting for Postgres while it is not up yet
// (a process started beside its database should not crash-loop).
func openPostgres(ctx context.Context, url string, log *slog.Logger) (*postgres.Pool, error) {
	var pool *postgres.Pool
	err := untilUp(ctx, log, "postgres", func() (err error) {
		pool, err = postgres.Open(ctx, url)
		return err
	})
	return pool, err
}

// untilUp tries once a second, 30 times at most, until try succeeds: a
// dependency that starts beside the process gets half a minute to come up.
func untilUp(ctx context.Context, log *slog.Logger, what string, try func() error) error {
	for attempt := 1; ; attempt++ {
		err := try()
		if err == nil || attempt >= 30 || ctx.Err() != nil {
			return err
		}
		log.Warn(what+" not ready; retrying", "err", err, "attempt", attempt)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// tokenSecret is the secret the api and the edges sign and check tokens
// with: CHAT_TOKEN_SECRET, or in the one-process mode (no CHAT_NATS_URL)
// the one kept in the data dir.
func tokenSecret(cfg config.Config) (string, error) {
	if cfg.TokenSecret != "" {
		return cfg.TokenSecret, nil
	}
	if cfg.NATSURL != "" {
		return "", errors.New("CHAT_TOKEN_SECRET is required when roles run as separate processes")
	}
	return localSecret(cfg.DataDir)
}

// localSecret reads the token secret the one-process mode keeps in its data
// dir, generating it on first start.
func localSecret(dir string) (string, error) {
	path := filepath.Join(dir, "token-secret")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 16 {
		return strings.TrimSpace(string(b)), nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create data dir: %w", err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	secret := hex.EncodeToString(b)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("keep token secret: %w", err)
	}
	return secret, nil
}

// streamSync is CHAT_STREAM_SYNC for the embedded JetStream server (Load
// has checked it). With an external NATS the servers' own jetstream
// sync_interval decides, and chatd says so at start.
func streamSync(cfg config.Config) timeline.Sync {
	always, interval, _ := cfg.StreamSyncMode()
	return timeline.Sync{Always: always, Interval: interval}
}
