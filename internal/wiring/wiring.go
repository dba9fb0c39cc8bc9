// Package wiring wires the roles (api, sequencer, projector, edge) to their
// dependencies and runs any set of them in one process: cmd/chatd runs them
// all, each cmd/<role> runs one, and tests boot one role or several
// in-process against real stores (Start with the roles wanted). It holds no
// policy: what a setting means is decided in internal/config or in the role
// or store the setting is for.
package wiring

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"sync"

	"github.com/oklog/ulid/v2"

	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/internal/postgres"
	"github.com/seqchat/seqchat/internal/serve"
	"github.com/seqchat/seqchat/timeline"
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

// System is a running set of roles: one process's, or one of a test's.
type System struct {
	// Addr is the address the HTTP server listens on.
	Addr string
	// NATS is the process's connection (and embedded server, if any).
	NATS *timeline.Conn
	Pool *postgres.Pool

	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// Wait blocks until the system has stopped and returns why.
func (s *System) Wait() error { <-s.done; return s.err }

// Stop stops the system, draining in-flight work, and waits for it.
func (s *System) Stop() error { s.cancel(); return s.Wait() }

// Run runs roles until ctx ends.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger, roles ...Role) error {
	s, err := Start(ctx, cfg, log, roles...)
	if err != nil {
		return err
	}
	return s.Wait()
}

// Start connects to the dependencies, wires roles to them and serves HTTP.
func Start(ctx context.Context, cfg config.Config, log *slog.Logger, roles ...Role) (*System, error) {
	if cfg.InstanceID == "" {
		cfg.InstanceID = strings.ToLower(ulid.Make().String())
	}
	log = log.With("instance", cfg.InstanceID)
	has := func(r Role) bool { return slices.Contains(roles, r) }
	if has(API) || has(Edge) {
		secret, err := tokenSecret(cfg)
		if err != nil {
			return nil, err
		}
		cfg.TokenSecret = secret
	}
	ctx, cancel := context.WithCancel(ctx)
	p, err := connect(ctx, cfg, log)
	if err != nil {
		cancel()
		return nil, err
	}
	fail := func(err error) (*System, error) {
		cancel()
		p.close()
		return nil, err
	}
	if err := p.wire(ctx, roles); err != nil {
		return fail(err)
	}
	if cfg.PprofAddr != "" {
		// Profiles on their own listener, never on the public address.
		go func() { log.Warn("pprof stopped", "err", http.ListenAndServe(cfg.PprofAddr, pprofMux())) }()
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fail(fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err))
	}
	s := &System{Addr: ln.Addr().String(), NATS: p.nc, Pool: p.pool, cancel: cancel, done: make(chan struct{})}
	log.Info("serving", "addr", s.Addr, "roles", roles)
	p.serve(ctx, ln, s)
	return s, nil
}

// wire wires each of roles to the process: one function per role
// (roles.go), the api and the edge sharing what both need.
func (p *process) wire(ctx context.Context, roles []Role) error {
	has := func(r Role) bool { return slices.Contains(roles, r) }
	if has(API) || has(Edge) || has(Projector) {
		p.run(func(ctx context.Context) error { watchRedis(ctx, p.rdb, p.log); return nil })
	}
	if has(Sequencer) {
		if err := p.wireSequencer(ctx); err != nil {
			return err
		}
	}
	if has(Projector) {
		if err := p.wireProjectors(ctx); err != nil {
			return err
		}
	}
	if has(API) || has(Edge) {
		f, err := p.wireFront(ctx)
		if err != nil {
			return err
		}
		if has(API) {
			if err := p.wireAPI(ctx, f); err != nil {
				return err
			}
		}
		if has(Edge) {
			if err := p.wireEdge(f); err != nil {
				return err
			}
		}
	}
	return nil
}

// serve runs the roles and the HTTP server on ln until ctx ends or one of
// them fails, then stops them in order and closes the connections.
func (p *process) serve(ctx context.Context, ln net.Listener, s *System) {
	var wg sync.WaitGroup
	errc := make(chan error, len(p.runs)+1)
	roleCtx, stopRoles := context.WithCancel(context.WithoutCancel(ctx))
	for _, run := range p.runs {
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
		if err := serve.Serve(ctx, ln, p.mux, serveOptions(p.cfg, p.log)); err != nil {
			errc <- err
		}
	}()
	go func() {
		defer close(s.done)
		select {
		case <-ctx.Done():
		case s.err = <-errc:
			p.log.Error("stopping", "err", s.err)
			s.cancel()
		}
		// Stop taking requests first, then let the roles finish their batches.
		<-httpDone
		stopRoles()
		wg.Wait()
		p.close()
		p.log.Info("stopped")
	}()
}

func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// serveOptions is how the HTTP listener runs.
func serveOptions(cfg config.Config, log *slog.Logger) serve.Options {
	return serve.Options{
		Grace: cfg.ShutdownTimeout, TLSCert: cfg.TLSCert, TLSKey: cfg.TLSKey,
		ReadTimeout: cfg.HTTPReadTimeout, WriteTimeout: cfg.HTTPWriteTimeout, Log: log,
	}
}
