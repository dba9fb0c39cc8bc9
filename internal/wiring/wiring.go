// Package wiring wires the roles (api, sequencer, projector, edge) to their
// dependencies and runs any set of them in one process: cmd/chatd runs them
// all, each cmd/<role> runs one, and tests boot them in-process.
package wiring

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"

	"github.com/seqchat/seqchat/internal/api"
	"github.com/seqchat/seqchat/internal/auth"
	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/internal/edge"
	"github.com/seqchat/seqchat/internal/membership"
	"github.com/seqchat/seqchat/internal/postgres"
	"github.com/seqchat/seqchat/internal/presence"
	"github.com/seqchat/seqchat/internal/projector/fanout"
	"github.com/seqchat/seqchat/internal/projector/history"
	"github.com/seqchat/seqchat/internal/receipts"
	"github.com/seqchat/seqchat/internal/sequencer"
	"github.com/seqchat/seqchat/internal/serve"
	"github.com/seqchat/seqchat/internal/webui"
	"github.com/seqchat/seqchat/timeline"
	"github.com/seqchat/seqchat/unread"
)

// Role is one part of the system a process can run.
type Role string

const (
	API       Role = "api"
	Sequencer Role = "sequencer"
	Projector Role = "projector"
	Edge      Role = "edge"
)

// AllRoles is what the one-process mode runs.
var AllRoles = []Role{API, Sequencer, Projector, Edge}

// App is a running process.
type App struct {
	// Addr is the address the HTTP server listens on.
	Addr string
	// NATS is the process's connection (and embedded server, if any).
	NATS *timeline.Conn
	Pool *pgxpool.Pool

	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// Wait blocks until the app has stopped and returns why.
func (a *App) Wait() error { <-a.done; return a.err }

// Stop stops the app, draining in-flight work, and waits for it.
func (a *App) Stop() error { a.cancel(); return a.Wait() }

// Run runs roles until ctx ends.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger, roles ...Role) error {
	a, err := Start(ctx, cfg, log, roles...)
	if err != nil {
		return err
	}
	return a.Wait()
}

// Start connects to the dependencies, starts roles and serves HTTP.
func Start(ctx context.Context, cfg config.Config, log *slog.Logger, roles ...Role) (*App, error) {
	if cfg.InstanceID == "" {
		cfg.InstanceID = strings.ToLower(ulid.Make().String())
	}
	has := func(r Role) bool { return slices.Contains(roles, r) }
	log = log.With("instance", cfg.InstanceID)
	ctx, cancel := context.WithCancel(ctx)
	a := &App{cancel: cancel, done: make(chan struct{})}
	var closers []func()
	fail := func(err error) (*App, error) {
		cancel()
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
		return nil, err
	}

	if (has(API) || has(Edge)) && cfg.TokenSecret == "" {
		if cfg.NATSURL != "" {
			return fail(errors.New("CHAT_TOKEN_SECRET is required when roles run as separate processes"))
		}
		secret, err := localSecret(cfg.DataDir)
		if err != nil {
			return fail(err)
		}
		cfg.TokenSecret = secret
	}

	nc, err := timeline.Connect(ctx, cfg.NATSURL, cfg.DataDir, streamSync(cfg), "chat-"+cfg.InstanceID, log)
	if err != nil {
		return fail(err)
	}
	a.NATS = nc
	closers = append(closers, nc.Close)
	if cfg.NATSURL != "" {
		log.Info("durability: TIMELINE is synced to disk as the NATS servers' jetstream sync_interval says (CHAT_STREAM_SYNC applies to the embedded server only); see docs/operations.md, Durability", "replicas", cfg.StreamReplicas)
	}
	if err := ensureStreams(ctx, nc, cfg, log); err != nil {
		return fail(err)
	}

	pool, err := openPostgres(ctx, cfg.PostgresURL, log)
	if err != nil {
		return fail(err)
	}
	a.Pool = pool
	closers = append(closers, pool.Close)

	ropt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return fail(fmt.Errorf("parse redis url: %w", err))
	}
	rdb := redis.NewClient(ropt)
	closers = append(closers, func() { rdb.Close() })

	reg := serve.NewRegistry()
	mux := http.NewServeMux()
	serve.Mount(mux, reg, []serve.Check{
		{Name: "jetstream", Fn: func(ctx context.Context) error {
			_, err := nc.JS.AccountInfo(ctx)
			return err
		}},
		{Name: "postgres", Fn: pool.Ping},
		{Name: "redis", Fn: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
	})

	tl := timeline.New(nc.NC, nc.JS)
	unreads := unread.New(rdb, cfg.RedisPrefix)
	hist := history.NewReader(pool, tl) // stateless: one for every role
	reads := receipts.New(pool, hist, unreads, nil)
	pres := presence.New(rdb, cfg.RedisPrefix, presenceTTL(cfg))
	// The fanout projector keeps presence in memory; a new connection is
	// announced to it before the edge lets the connection sync.
	pres.OnConnect(fanout.AnnounceConnect(nc.NC))
	var runs []func(context.Context) error
	if has(API) || has(Edge) || has(Projector) {
		runs = append(runs, func(ctx context.Context) error { watchRedis(ctx, rdb, log); return nil })
	}
	if has(Sequencer) {
		seq, err := sequencer.New(ctx, nc.NC, nc.JS, membership.New(pool, 0), sequencer.Options{
			InstanceID: cfg.InstanceID, Partitions: cfg.Partitions, Batch: cfg.SequencerBatch,
			LeaseTTL: cfg.LeaseTTL, RecallWindow: cfg.RecallWindow, Log: log.With("role", "sequencer"), Metrics: reg,
			AtomicBatches: cfg.StreamReplicas > 1 || cfg.StreamStorage == "memory",
			History:       hist,
		})
		if err != nil {
			return fail(err)
		}
		runs = append(runs, seq.Run)
	}
	if has(Projector) {
		leases, err := nc.JS.KeyValue(ctx, timeline.LeaseBucket)
		if err != nil {
			return fail(fmt.Errorf("open bucket %s: %w", timeline.LeaseBucket, err))
		}
		// Each projector runs in one process at a time (it acks a batch at
		// once and applies events in order); replicas stand by and take
		// over within a lease TTL.
		leased := func(name string, run func(context.Context) error) func(context.Context) error {
			return func(ctx context.Context) error {
				timeline.HoldLease(ctx, leases, "projector-"+name, cfg.InstanceID, cfg.LeaseTTL, log.With("role", name), run)
				return nil
			}
		}
		runs = append(runs,
			leased("history", history.NewProjector(pool, nc.JS, cfg.ProjectorBatch, log.With("role", "projector"), reg).Run),
			leased("unread", unread.NewProjector(unreads, pool, membership.New(pool, 0), nc.JS, cfg.ProjectorBatch, log.With("role", "unread"), reg).Run),
			leased("fanout", fanout.New(nc.NC, nc.JS, membership.New(pool, 0), pres, cfg.ProjectorBatch, log.With("role", "fanout"), reg).Run))
		// Webhooks and offline push: one leased consumer per URL (server.go).
		runs = append(runs, hookRuns(cfg, nc, pool, unreads, pres, reg, log, func(name string, run func(context.Context) error) func(context.Context) error {
			return func(ctx context.Context) error {
				timeline.HoldLease(ctx, leases, name, cfg.InstanceID, cfg.LeaseTTL, log.With("role", name), run)
				return nil
			}
		})...)
	}
	if has(API) || has(Edge) {
		tokens, err := auth.NewTokens(cfg.TokenSecret, cfg.TokenTTL)
		if err != nil {
			return fail(err)
		}
		sub, err := timeline.NewSubmitter(ctx, nc.NC, nc.JS, cfg.Partitions)
		if err != nil {
			return fail(err)
		}
		closers = append(closers, sub.Close)
		sub.Limit(cfg.CommandsInFlight, reg)
		// Sessions, abuse limits, receipt and presence frames (guard.go).
		g, err := newGuards(ctx, cfg, pool, nc, rdb, pres, reads, log)
		if err != nil {
			return fail(err)
		}
		closers = append(closers, g.close)
		runs = append(runs, g.runs()...)
		if has(API) {
			opt := api.Options{
				PasswordCost: cfg.PasswordCost, CommandTimeout: cfg.CommandTimeout,
				MaxGroupMembers: cfg.MaxGroupMembers, Log: log.With("role", "api"),
				Online: pres.Online, Reads: reads, Unread: unreads,
				Metrics: reg, AccessLog: cfg.AccessLog,
			}
			g.api(cfg, &opt)
			if opt.Server, err = serverOptions(ctx, cfg, nc, g.frames, pool); err != nil {
				return fail(err)
			}
			api.New(pool, tokens, sub, hist, opt).Mount(mux)
			webui.New().Mount(mux) // the web client at "/" (web/)
		}
		if has(Edge) {
			opt := edge.Options{
				ID: cfg.InstanceID, OutboundSize: cfg.EdgeOutboundSize, RateLimits: cfg.RateLimits,
				CommandRate: cfg.CommandRate, CommandBurst: cfg.CommandBurst, CommandTimeout: cfg.CommandTimeout,
				FirstSyncWait: cfg.EdgeFirstSyncWait, Log: log.With("role", "edge"), Metrics: reg,
			}
			g.edge(cfg, reads, &opt)
			e, err := edge.New(nc.NC, sub, hist, pool, tokens, pres, opt)
			if err != nil {
				return fail(err)
			}
			e.Mount(mux) // beside REST in the one-process mode
			runs = append(runs, e.Run)
		}
	}

	if cfg.PprofAddr != "" {
		// Profiles on their own listener, never on the public address.
		go func() { log.Warn("pprof stopped", "err", http.ListenAndServe(cfg.PprofAddr, pprofMux())) }()
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fail(fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err))
	}
	a.Addr = ln.Addr().String()
	log.Info("serving", "addr", a.Addr, "roles", roles)

	var wg sync.WaitGroup
	errc := make(chan error, len(runs)+1)
	roleCtx, stopRoles := context.WithCancel(context.WithoutCancel(ctx))
	for _, run := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(roleCtx); err != nil {
				errc <- err
			}
		}()
	}
	httpDone := make(chan struct{})
	go func() {
		defer close(httpDone)
		if err := serve.ServeWith(ctx, ln, mux, serveOptions(cfg, log)); err != nil {
			errc <- err
		}
	}()
	go func() {
		defer close(a.done)
		select {
		case <-ctx.Done():
		case a.err = <-errc:
			log.Error("stopping", "err", a.err)
			cancel()
		}
		// Stop taking requests first, then let the roles finish their batches.
		<-httpDone
		stopRoles()
		wg.Wait()
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
		log.Info("stopped")
	}()
	return a, nil
}

func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// ensureStreams creates or updates the streams, retrying while the
// JetStream cluster is still electing its leaders (several roles starting
// at once on a fresh cluster time out on their first try).
func ensureStreams(ctx context.Context, nc *timeline.Conn, cfg config.Config, log *slog.Logger) error {
	settings := timeline.Settings{
		Replicas: cfg.StreamReplicas, Storage: cfg.StreamStorage, MaxAge: cfg.TimelineMaxAge,
		DuplicateWindow: cfg.DuplicateWindow, DedupeTTL: cfg.DedupeTTL, LeaseTTL: cfg.LeaseTTL,
	}
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := timeline.Ensure(actx, nc.JS, settings)
		cancel()
		if err == nil || attempt >= 30 || ctx.Err() != nil {
			return err
		}
		log.Warn("jetstream not ready; retrying", "err", err, "attempt", attempt)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// openPostgres opens the pool, waiting for Postgres while it is not up yet
// (a process started beside its database should not crash-loop).
func openPostgres(ctx context.Context, url string, log *slog.Logger) (*pgxpool.Pool, error) {
	for attempt := 1; ; attempt++ {
		pool, err := postgres.Open(ctx, url)
		if err == nil {
			return pool, nil
		}
		if attempt >= 30 || ctx.Err() != nil {
			return nil, err
		}
		log.Warn("postgres not ready; retrying", "err", err, "attempt", attempt)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
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
