package wiring

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/internal/postgres"
	"github.com/seqchat/seqchat/internal/projector/history"
	unreadprojector "github.com/seqchat/seqchat/internal/projector/unread"
	"github.com/seqchat/seqchat/timeline"
	"github.com/seqchat/seqchat/unread"
)

// Main is the body of a cmd/<role>: configuration from flags and the
// environment, JSON logs, SIGTERM and SIGINT drain and stop. A binary that
// runs the projector (cmd/projector, cmd/chatd) also takes "rebuild" as
// its first argument: it then replays TIMELINE into the emptied
// projections instead of running (Rebuild). Any other argument that is not
// a flag is refused, so that "api rebuild" says so instead of running the
// api.
func Main(roles ...Role) {
	rebuild, args, err := command(os.Args[1:], roles)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", filepath.Base(os.Args[0]), err)
		os.Exit(2)
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

// command reads the command a binary running roles was given before its
// flags: none, or "rebuild" where roles include the projector.
func command(args []string, roles []Role) (rebuild bool, flags []string, err error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return false, args, nil
	}
	if args[0] != "rebuild" || !slices.Contains(roles, Projector) {
		return false, nil, fmt.Errorf("unknown command %q (only the binaries that run the projector take \"rebuild\")", args[0])
	}
	return true, args[1:], nil
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
	n, err := history.Rebuild(ctx, postgres.NewHistoryWriter(pool), nc.JS, cfg.ProjectorBatch)
	if err != nil {
		return err
	}
	log.Info("history rebuilt", "events", n)
	rdb, err := openRedis(cfg.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if n, err = unreadprojector.Rebuild(ctx, unread.New(rdb, cfg.RedisPrefix), pool, nc.JS, cfg.ProjectorBatch); err != nil {
		return err
	}
	log.Info("unread counts rebuilt", "events", n)
	return nil
}
