package wiring

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/internal/projector/history"
	"github.com/seqchat/seqchat/timeline"
	"github.com/seqchat/seqchat/unread"
)

// Main is the body of a cmd/<role>: configuration from flags and the
// environment, JSON logs, SIGTERM and SIGINT drain and stop.
func Main(roles ...Role) {
	args := os.Args[1:]
	rebuild := len(args) > 0 && args[0] == "rebuild"
	if rebuild {
		args = args[1:]
	}
	cfg, err := config.Load(args, os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log := Logger(os.Stderr, cfg)
	RouteRedisLogs(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if rebuild {
		err = Rebuild(ctx, cfg, log)
	} else {
		err = Run(ctx, cfg, log, roles...)
	}
	if err != nil {
		log.Error("exit", "err", err)
		os.Exit(1)
	}
}

// Logger is the process's logger: JSON lines at cfg's level.
func Logger(w io.Writer, cfg config.Config) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: cfg.LogLevel}))
}

// Rebuild replays TIMELINE into emptied projections: the history, and the
// unread counts and recall state (with the read pointers kept in Postgres).
func Rebuild(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	nc, err := timeline.Connect(ctx, cfg.NATSURL, cfg.DataDir, streamSync(cfg), "chat-rebuild", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	pool, err := openPostgres(ctx, cfg.PostgresURL, log)
	if err != nil {
		return err
	}
	defer pool.Close()
	n, err := history.Rebuild(ctx, pool, nc.JS, cfg.ProjectorBatch)
	if err != nil {
		return err
	}
	log.Info("history rebuilt", "events", n)
	ropt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("parse redis url: %w", err)
	}
	rdb := redis.NewClient(ropt)
	defer rdb.Close()
	if n, err = unread.Rebuild(ctx, unread.New(rdb, cfg.RedisPrefix), pool, nc.JS, cfg.ProjectorBatch); err != nil {
		return err
	}
	log.Info("unread counts rebuilt", "events", n)
	return nil
}
