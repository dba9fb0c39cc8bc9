package timeline

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Connecting. A process connects a process to NATS JetStream: to the cluster named
// by CHAT_NATS_URL, or to an embedded server it starts when that is empty.

// Conn is a live connection, and the embedded server when there is one.
type Conn struct {
	NC     *nats.Conn
	JS     jetstream.JetStream
	Server *server.Server // nil when connected to an external server
	// lock holds the embedded server's data directory (lockDataDir).
	lock *os.File
}

// Register exposes the connection's traffic in reg: messages and bytes in
// and out. Beside a count of acked messages they say how many NATS
// messages (publishes, deliveries, acks, answers) each one costs, the
// round trips the process makes per message.
func (c *Conn) Register(reg prometheus.Registerer) {
	stat := func(name, help string, v func(nats.Statistics) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 {
			return float64(v(c.NC.Stats()))
		})
	}
	reg.MustRegister(
		stat("chat_nats_in_messages_total", "NATS messages this process received.", func(s nats.Statistics) uint64 { return s.InMsgs }),
		stat("chat_nats_out_messages_total", "NATS messages this process published.", func(s nats.Statistics) uint64 { return s.OutMsgs }),
		stat("chat_nats_in_bytes_total", "Payload bytes of the NATS messages this process received.", func(s nats.Statistics) uint64 { return s.InBytes }),
		stat("chat_nats_out_bytes_total", "Payload bytes of the NATS messages this process published.", func(s nats.Statistics) uint64 { return s.OutBytes }),
	)
}

// Close drains the connection and stops the embedded server.
func (c *Conn) Close() {
	if c.NC != nil {
		_ = c.NC.Drain()
		// Drain is asynchronous; give it a moment before the server goes.
		deadline := time.Now().Add(2 * time.Second)
		for !c.NC.IsClosed() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		c.NC.Close()
	}
	if c.Server != nil {
		c.Server.Shutdown()
		c.Server.WaitForShutdown()
	}
	if c.lock != nil {
		c.lock.Close() // and with it the flock
	}
}

// Sync is how an embedded server syncs its file storage to disk.
type Sync struct {
	// Always fsyncs every write before it is acknowledged.
	Always bool
	// Interval is how often written data is fsynced otherwise; 0 is
	// nats-server's default (2 minutes).
	Interval time.Duration
}

func (s Sync) String() string {
	if s.Always {
		return "always"
	}
	if s.Interval == 0 {
		return "nats-server default (2m)"
	}
	return s.Interval.String()
}

// StartEmbedded starts a JetStream server storing in dir and listening on
// host:port (port -1: a random one), syncing to disk as sync says.
func StartEmbedded(dir, host string, port int, sync Sync) (*server.Server, error) {
	ns, err := server.NewServer(&server.Options{
		SyncAlways:         sync.Always,
		SyncInterval:       sync.Interval,
		ServerName:         "chatd",
		Host:               host,
		Port:               port,
		JetStream:          true,
		StoreDir:           filepath.Join(dir, "jetstream"),
		NoSigs:             true,
		NoLog:              true,
		MaxPayload:         4 << 20,
		JetStreamMaxMemory: 1 << 30,
	})
	if err != nil {
		return nil, fmt.Errorf("create embedded nats-server: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded nats-server not ready after 10s")
	}
	return ns, nil
}

// Connect connects to url (comma-separated servers), or, when url is empty,
// starts an embedded server in dataDir, syncing as sync says, and connects
// to it in-process; the directory is this process's until Close (one
// embedded server per directory: another process's Connect on it fails). (An external server syncs as its own configuration
// says; sync is not used then.)
func Connect(ctx context.Context, url, dataDir string, sync Sync, name string, log *slog.Logger) (*Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		// Reconnect forever: a NATS restart must never need a restart of ours.
		nats.MaxReconnects(-1),
		// Start even if NATS is not up yet (a cluster starting beside us).
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(64 << 20),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", "url", nc.ConnectedUrl()) }),
	}
	c := &Conn{}
	if url == "" {
		lock, err := lockDataDir(dataDir)
		if err != nil {
			return nil, err
		}
		c.lock = lock
		ns, err := StartEmbedded(dataDir, "127.0.0.1", -1, sync)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.Server = ns
		url = ns.ClientURL()
		opts = append(opts, nats.InProcessServer(ns))
		log.Info("embedded JetStream started", "url", url, "dir", dataDir, "sync", sync.String())
	}
	nc, err := nats.Connect(strings.TrimSpace(url), opts...)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("connect to nats %s: %w", url, err)
	}
	c.NC = nc
	// An async publish whose ack was lost with a failing server must fail
	// too, not wait forever: a timeout ends it and the caller retries.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(4*time.Second))
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	c.JS = js
	return c, nil
}
