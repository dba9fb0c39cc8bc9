// Package testenv hands tests the real dependencies: an embedded JetStream
// server on a temp dir and a random port, a fresh Postgres database, and a
// Redis key prefix of their own, so that tests can run in parallel.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/timeline"
)

// PostgresAdminURL is the maintenance database tests create databases through.
func PostgresAdminURL() string {
	if u := os.Getenv("CHAT_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// RedisURL is the Redis tests use, each under its own prefix.
func RedisURL() string {
	if u := os.Getenv("CHAT_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// Name returns a short random name with the given prefix.
func Name(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Postgres creates an empty database for t, dropped when t ends, and returns
// its URL.
func Postgres(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	admin := PostgresAdminURL()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("testenv: connect to postgres (%s): %v", admin, err)
	}
	defer conn.Close(ctx)
	name := Name("t_")
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testenv: create database: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	i := strings.LastIndex(admin, "/")
	rest := ""
	if q := strings.Index(admin[i:], "?"); q >= 0 {
		rest = admin[i+q:]
	}
	return admin[:i+1] + name + rest
}

// NATS starts an embedded JetStream server for t on a temp dir and a random
// port and returns its client URL; it stops when t ends.
func NATS(t testing.TB) string {
	t.Helper()
	ns, err := timeline.StartEmbedded(t.TempDir(), "127.0.0.1", -1, timeline.Sync{})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns.ClientURL()
}

// Connect starts an embedded JetStream server for t and connects to it.
func Connect(t testing.TB) *timeline.Conn {
	t.Helper()
	c, err := timeline.Connect(context.Background(), NATS(t), "", timeline.Sync{}, t.Name(), Logger(t))
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// Streams is Connect with the streams and buckets created (file storage,
// one replica), as the roles find them.
func Streams(t testing.TB) *timeline.Conn {
	t.Helper()
	c := Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := timeline.Ensure(ctx, c.JS, timeline.Settings{Storage: "file"}); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return c
}

// Config returns a configuration for t: its own JetStream server, database
// and Redis prefix, a random HTTP port, cheap password hashing and memory
// streams unless file storage is asked for.
func Config(t testing.TB) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.PostgresURL = Postgres(t)
	cfg.RedisURL = RedisURL()
	cfg.RedisPrefix = Name("test:") + ":"
	cfg.NATSURL = NATS(t)
	cfg.DataDir = t.TempDir()
	cfg.TokenSecret = "test-secret-" + Name("")
	cfg.PasswordCost = 4
	cfg.RateLimits = false
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.LeaseTTL = 2 * time.Second
	return cfg
}

// Logger returns a logger that writes through t.Log.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Context returns a context that ends with t (or after d).
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Eventually polls cond every 20ms until it holds or d passes.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Seed inserts users and a group conversation straight into Postgres, for
// tests of the roles below the api. The first user owns the group.
func Seed(t testing.TB, pool interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}, conv string, users ...string) {
	t.Helper()
	ctx := context.Background()
	for _, u := range users {
		if _, err := pool.Exec(ctx, "INSERT INTO users (id, username, password_hash) VALUES ($1, $1, 'x') ON CONFLICT DO NOTHING", u); err != nil {
			t.Fatalf("seed user: %v", err)
		}
	}
	if _, err := pool.Exec(ctx, "INSERT INTO conversations (id, kind, title, owner_id) VALUES ($1, 'group', $1, $2)", conv, users[0]); err != nil {
		t.Fatalf("seed conversation: %v", err)
	}
	for i, u := range users {
		role := events.RoleMember
		if i == 0 {
			role = events.RoleOwner
		}
		if _, err := pool.Exec(ctx, "INSERT INTO members (conv_id, user_id, role) VALUES ($1, $2, $3)", conv, u, string(role)); err != nil {
			t.Fatalf("seed member: %v", err)
		}
	}
}

// NATSCluster starts an embedded JetStream cluster of n servers for t, each
// on its own temp dir and loopback ports, and returns the client URLs,
// comma-separated, once the cluster has a JetStream meta leader. It is for
// tests of what only replicated streams do (R3 answers some errors with
// other codes than a single server); it stops when t ends.
func NATSCluster(t testing.TB, n int) string {
	t.Helper()
	// The routes must be known before the servers start: take free ports.
	ports := make([]int, n)
	var routes []*url.URL
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", ports[i])})
	}
	servers := make([]*server.Server, n)
	urls := make([]string, n)
	for i := range servers {
		ns, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   filepath.Join(t.TempDir(), "jetstream"),
			NoSigs:     true,
			NoLog:      true,
			Cluster:    server.ClusterOpts{Name: "test", Host: "127.0.0.1", Port: ports[i]},
			Routes:     routes,
		})
		if err != nil {
			t.Fatalf("testenv: create nats-server %d: %v", i+1, err)
		}
		ns.Start()
		t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
		servers[i] = ns
	}
	for i, ns := range servers {
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatalf("testenv: nats-server %d not ready after 10s", i+1)
		}
		urls[i] = ns.ClientURL()
	}
	Eventually(t, 30*time.Second, "a JetStream meta leader with every peer", func() bool {
		for _, ns := range servers {
			if ns.JetStreamIsLeader() && len(ns.JetStreamClusterPeers()) == n {
				return true
			}
		}
		return false
	})
	return strings.Join(urls, ",")
}
