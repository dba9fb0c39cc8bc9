package wiring

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/seqchat/seqchat/internal/api"
	"github.com/seqchat/seqchat/internal/auth"
	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/internal/edge"
	"github.com/seqchat/seqchat/internal/membership"
	"github.com/seqchat/seqchat/internal/presence"
	"github.com/seqchat/seqchat/internal/projector/fanout"
	"github.com/seqchat/seqchat/internal/ratelimit"
	"github.com/seqchat/seqchat/internal/receipts"
	"github.com/seqchat/seqchat/internal/serve"
	"github.com/seqchat/seqchat/timeline"
)

// presenceTTL is how long a presence entry holds without a refresh: a
// heartbeat and a quarter, so a refresh has a quarter heartbeat to land,
// and with sweeps every tenth of the TTL a dead edge's users are offline
// within 1.375 heartbeats of its last refresh: within two of its death.
func presenceTTL(cfg config.Config) time.Duration { return cfg.PresenceHeartbeat * 5 / 4 }

// guards is what the api and the edges share beyond commands: the revoked
// sessions, the abuse limits, and the frames pushed to connections
// (receipts, presence).
type guards struct {
	revs      *auth.Revocations
	limits    *ratelimit.Windows
	userLimit *ratelimit.Shared
	frames    *fanout.Frames
	pool      *pgxpool.Pool
}

func newGuards(ctx context.Context, cfg config.Config, pool *pgxpool.Pool, nc *timeline.Conn, rdb redis.Cmdable, pres *presence.Store, reads *receipts.Service, log *slog.Logger) (*guards, error) {
	revs, err := auth.NewRevocations(ctx, pool, nc.NC, log.With("role", "sessions"))
	if err != nil {
		return nil, err
	}
	g := &guards{revs: revs, frames: fanout.NewFrames(nc.NC, pres), pool: pool}
	if cfg.RateLimits {
		g.limits = ratelimit.New(rdb, cfg.RedisPrefix)
		g.userLimit = ratelimit.NewShared(g.limits, ratelimit.Limit{Max: cfg.UserCommands, Window: cfg.UserCommandWindow},
			min(100*time.Millisecond, cfg.UserCommandWindow/10))
	}
	// Receipts go out like events; a direct conversation's members come
	// from the membership cache, not a query per receipt.
	reads.SetNotify(receipts.Deliver(membership.New(pool, 0), g.frames))
	return g, nil
}

// runs returns the guards' background work.
func (g *guards) runs() []func(context.Context) error {
	runs := []func(context.Context) error{func(ctx context.Context) error { return g.revs.Run(ctx, 30*time.Second) }}
	if g.userLimit != nil {
		runs = append(runs, g.userLimit.Run)
	}
	return runs
}

func (g *guards) close() { g.revs.Close() }

func (g *guards) api(cfg config.Config, o *api.Options) {
	o.Revocations = g.revs
	o.ClientIPHeader = cfg.ClientIPHeader
	if g.limits != nil {
		o.Limits = g.limits
		o.LoginFailuresPerUser = ratelimit.Limit{Max: cfg.LoginFailuresPerUser, Window: cfg.LoginFailureWindow}
		o.LoginFailuresPerAddr = ratelimit.Limit{Max: cfg.LoginFailuresPerAddr, Window: cfg.LoginFailureWindow}
		o.SignupsPerAddr = ratelimit.Limit{Max: cfg.SignupsPerAddr, Window: cfg.SignupWindow}
		o.UserLimit = g.userLimit
	}
}

func (g *guards) edge(cfg config.Config, reads *receipts.Service, o *edge.Options) {
	o.Revocations = g.revs
	o.Reads = reads
	o.Frames = g.frames
	o.Friends = g.friends
	o.Heartbeat = cfg.PresenceHeartbeat
	if g.userLimit != nil {
		o.UserLimit = g.userLimit
	}
	for _, origin := range strings.Split(cfg.AllowedOrigins, ",") {
		if origin = strings.TrimSpace(origin); origin != "" {
			o.AllowedOrigins = append(o.AllowedOrigins, origin)
		}
	}
}

// friends lists whom user's presence changes go to.
func (g *guards) friends(ctx context.Context, user string) ([]string, error) {
	rows, err := g.pool.Query(ctx, "SELECT friend_id FROM friends WHERE user_id=$1", user)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// serveOptions is how the HTTP listener runs.
func serveOptions(cfg config.Config, log *slog.Logger) serve.ServeOptions {
	return serve.ServeOptions{
		Grace: cfg.ShutdownTimeout, TLSCert: cfg.TLSCert, TLSKey: cfg.TLSKey,
		ReadTimeout: cfg.HTTPReadTimeout, WriteTimeout: cfg.HTTPWriteTimeout, Log: log,
	}
}
