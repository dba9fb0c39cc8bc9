package wiring

import (
	"context"

	"github.com/seqchat/seqchat/internal/activity"
	"github.com/seqchat/seqchat/internal/api"
	"github.com/seqchat/seqchat/internal/auth"
	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/internal/edge"
	"github.com/seqchat/seqchat/internal/postgres"
	"github.com/seqchat/seqchat/internal/projector/fanout"
	"github.com/seqchat/seqchat/internal/receipts"
)

// guards is what the api and the edges share beyond commands: the revoked
// sessions, the abuse limits, and the frames pushed to connections
// (receipts, presence).
type guards struct {
	revs      *auth.Revocations
	limits    *activity.Windows
	userLimit *activity.Shared
	frames    *fanout.Frames
	friends   func(ctx context.Context, user string) ([]string, error)
}

func (p *process) newGuards(ctx context.Context) (*guards, error) {
	cfg := p.cfg
	revs, err := auth.NewRevocations(ctx, postgres.NewSessions(p.pool), p.nc.NC, p.log.With("role", "sessions"))
	if err != nil {
		return nil, err
	}
	g := &guards{
		revs: revs, frames: fanout.NewFrames(p.nc.NC, p.pres),
		friends: postgres.NewFriends(p.pool).IDs,
	}
	if cfg.RateLimits {
		g.limits = activity.NewWindows(p.rdb, cfg.RedisPrefix)
		g.userLimit = activity.NewShared(g.limits, activity.Limit{Max: cfg.UserCommands, Window: cfg.UserCommandWindow})
	}
	// Receipts go out like events; a direct conversation's members come
	// from the membership cache, not a query per receipt.
	p.reads.SetNotify(receipts.Deliver(postgres.NewMemberCache(p.pool, 0), g.frames))
	return g, nil
}

// runs returns the guards' background work.
func (g *guards) runs() []func(context.Context) error {
	runs := []func(context.Context) error{g.revs.Run}
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
		o.LoginFailuresPerUser = activity.Limit{Max: cfg.LoginFailuresPerUser, Window: cfg.LoginFailureWindow}
		o.LoginFailuresPerAddr = activity.Limit{Max: cfg.LoginFailuresPerAddr, Window: cfg.LoginFailureWindow}
		o.SignupsPerAddr = activity.Limit{Max: cfg.SignupsPerAddr, Window: cfg.SignupWindow}
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
	o.AllowedOrigins = config.List(cfg.AllowedOrigins)
}
