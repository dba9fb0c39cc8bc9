package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/internal/history"
	"github.com/seqchat/seqchat/internal/natsconn"
)

// Main is the body of a cmd/<role>: configuration from flags and the
// environment, JSON logs, SIGTERM and SIGINT drain and stop.
func Main(roles ...Role) {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
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

// Rebuild replays TIMELINE into an emptied history projection.
func Rebuild(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	nc, err := natsconn.Connect(ctx, cfg.NATSURL, cfg.DataDir, "chat-rebuild", log)
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
	return nil
}
