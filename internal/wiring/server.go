package wiring

import (
	"context"

	"github.com/seqchat/seqchat/internal/api"
	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/internal/postgres"
	"github.com/seqchat/seqchat/internal/projector/hooks"
	"github.com/seqchat/seqchat/internal/push"
)

// serverOptions wires the calls of the app's own backend (/v1/server/).
func (p *process) serverOptions(ctx context.Context, frames push.Frames) (api.ServerOptions, error) {
	cfg := p.cfg
	o := api.ServerOptions{Keys: config.List(cfg.ServerKeys), Rate: cfg.ServerRate}
	if len(o.Keys) == 0 {
		return o, nil
	}
	pu, err := push.New(ctx, p.nc.NC, p.nc.JS, cfg.StreamReplicas, frames, postgres.NewMembers(p.pool))
	if err != nil {
		return o, err
	}
	o.Push = pu
	return o, nil
}

// hookRuns returns the webhooks' and the offline push's runs, each under
// its own lease; unreadFed is the unread projection's feed when it runs fed
// in this process.
func (p *process) hookRuns(leased hooks.Leased, unreadFed hooks.Progress) []func(context.Context) error {
	cfg := p.cfg
	urls := config.List(cfg.WebhookURLs)
	if len(urls) == 0 && cfg.PushURL == "" {
		return nil
	}
	m := hooks.NewMetrics(p.reg)
	runs := hooks.NewWebhooks(p.nc.JS, urls, cfg.WebhookSecret, cfg.ProjectorBatch, m, p.log.With("role", "webhooks")).Runs(leased)
	if cfg.PushURL != "" {
		o := hooks.NewOffline(p.nc.JS, cfg.PushURL, cfg.WebhookSecret, postgres.NewMemberCache(p.pool, 0), p.pres.Online, p.unreads, cfg.ProjectorBatch, m, p.log.With("role", "push"))
		if unreadFed != nil {
			o.FollowUnread(unreadFed)
		}
		runs = append(runs, leased(hooks.OfflineConsumer, o.Run))
	}
	return runs
}
