// Package serve serves what every process shows its operators: /healthz,
// /readyz, Prometheus /metrics, and an HTTP server that drains on shutdown.
package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check reports whether one dependency is usable.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// NewRegistry returns a registry with the Go and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Router is what Mount adds its routes to: an *http.ServeMux, or a test
// that lists them.
type Router interface {
	Handle(pattern string, handler http.Handler)
	HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request))
}

// Mount adds /healthz, /readyz and /metrics to mux.
func Mount(mux Router, reg *prometheus.Registry, checks []Check) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		status, body := http.StatusOK, ""
		for _, c := range checks {
			if err := c.Fn(ctx); err != nil {
				status = http.StatusServiceUnavailable
				body += fmt.Sprintf("%s: %v\n", c.Name, err)
			} else {
				body += c.Name + ": ok\n"
			}
		}
		w.WriteHeader(status)
		w.Write([]byte(body))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
}

// Options configure Serve.
type Options struct {
	Grace time.Duration // how long shutdown waits for requests in flight
	// TLSCert and TLSKey are PEM files; both set: the listener serves TLS.
	TLSCert, TLSKey string
	// ReadTimeout bounds how long a request's body may take to arrive, and
	// WriteTimeout how long its answer may take, per request (0: none).
	// WebSocket upgrades are exempt: they live for hours and keep their own
	// deadlines.
	ReadTimeout, WriteTimeout time.Duration
	Log                       *slog.Logger
}

// MaxHeaderBytes bounds a request's headers (431 beyond).
const MaxHeaderBytes = 32 << 10

// Serve serves h on ln until ctx ends, then stops accepting and waits up
// to opt.Grace for requests in flight. A client that dribbles its headers
// is cut off by ReadHeaderTimeout, one that dribbles its body or reads its
// answer slowly by the per-request deadlines.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, opt Options) error {
	srv := &http.Server{
		Handler:           Deadlines(h, opt.ReadTimeout, opt.WriteTimeout),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(opt.Log.Handler(), slog.LevelWarn),
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12},
	}
	errc := make(chan error, 1)
	go func() {
		if opt.TLSCert != "" {
			errc <- srv.ServeTLS(ln, opt.TLSCert, opt.TLSKey)
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opt.Grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if e := <-errc; e != nil && !errors.Is(e, http.ErrServerClosed) {
		return e
	}
	return err
}

// Deadlines sets per-request read and write deadlines on the connection
// (a server-wide ReadTimeout or WriteTimeout would also cut long-lived
// WebSockets). An upgrade gets its deadlines cleared instead: a deadline
// left by an earlier request on the same connection must not end it.
func Deadlines(h http.Handler, read, write time.Duration) http.Handler {
	if read <= 0 && write <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			_ = rc.SetReadDeadline(time.Time{})
			_ = rc.SetWriteDeadline(time.Time{})
		} else {
			now := time.Now()
			if read > 0 {
				_ = rc.SetReadDeadline(now.Add(read))
			}
			if write > 0 {
				_ = rc.SetWriteDeadline(now.Add(write))
			}
		}
		h.ServeHTTP(w, r)
	})
}
