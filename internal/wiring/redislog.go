package wiring

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seqchat/seqchat/internal/serve"
)

// RouteRedisLogs sends go-redis's own log lines (failed dials, pool
// errors) through log as structured warnings, each kind at most once a
// minute with a count of those held back, instead of go-redis's default of
// unstructured lines on stderr in the middle of the JSON log. go-redis
// keeps its logger in a package variable shared by every client of the
// process, so Main sets it once for the whole process; Start does not,
// since tests start several Systems in one process, each with its own logger.
func RouteRedisLogs(log *slog.Logger) {
	redis.SetLogger(&redisLogger{log: log.With("component", "go-redis"), repeats: serve.NewRepeats(time.Minute)})
}

type redisLogger struct {
	log     *slog.Logger
	repeats *serve.Repeats
}

func (l *redisLogger) Printf(ctx context.Context, format string, v ...any) {
	// The format names the kind of line; its arguments (an attempt count,
	// an error) vary from one occurrence to the next.
	ok, held := l.repeats.Allow(format)
	if !ok {
		return
	}
	msg := strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: ")
	if held > 0 {
		l.log.WarnContext(ctx, msg, "held_back", held)
		return
	}
	l.log.WarnContext(ctx, msg)
}

// redisDegraded is what a process without Redis still does and does not.
const redisDegraded = "redis unreachable: unread counts (GET /v1/unread, GET /v1/conversations), presence (online, presence frames) and the unread projection wait for it; " +
	"sending, acks, live delivery, history paging and logins keep working, and rate limits let requests through. Retrying in the background"

// watchRedis says once, at start, when Redis cannot be reached and what
// that degrades, then once more when it can be again. A process starts
// without Redis rather than refusing to: live chat does not need it.
func watchRedis(ctx context.Context, rdb *redis.Client, log *slog.Logger) {
	ping := func() error {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return rdb.Ping(pctx).Err()
	}
	err := ping()
	if err == nil {
		return
	}
	log.Warn(redisDegraded, "addr", rdb.Options().Addr, "err", err)
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if ping() == nil {
				log.Info("redis reachable again: unread counts and presence resume", "addr", rdb.Options().Addr)
				return
			}
		}
	}
}
