package wiring

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/seqchat/seqchat/internal/api"
	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/internal/membership"
	"github.com/seqchat/seqchat/internal/presence"
	"github.com/seqchat/seqchat/internal/projector/hooks"
	"github.com/seqchat/seqchat/internal/push"
	"github.com/seqchat/seqchat/timeline"
	"github.com/seqchat/seqchat/unread"
)

// serverOptions wires the calls of the app's own backend (/v1/server/).
func serverOptions(ctx context.Context, cfg config.Config, nc *timeline.Conn, frames push.Frames, pool *pgxpool.Pool) (api.ServerOptions, error) {
	o := api.ServerOptions{Keys: config.List(cfg.ServerKeys), Rate: cfg.ServerRate}
	if len(o.Keys) == 0 {
		return o, nil
	}
	p, err := push.New(ctx, nc.NC, nc.JS, cfg.StreamReplicas, frames, pool)
	if err != nil {
		return o, err
	}
	o.Push = p
	return o, nil
}

// hookRuns returns the webhooks' and the offline push's runs, each under
// its own lease.
func hookRuns(cfg config.Config, nc *timeline.Conn, pool *pgxpool.Pool, unreads *unread.Store, pres *presence.Store, reg prometheus.Registerer, log *slog.Logger, leased hooks.Leased) []func(context.Context) error {
	urls := config.List(cfg.WebhookURLs)
	if len(urls) == 0 && cfg.PushURL == "" {
		return nil
	}
	m := hooks.NewMetrics(reg)
	runs := hooks.NewWebhooks(nc.JS, urls, cfg.WebhookSecret, cfg.ProjectorBatch, m, log.With("role", "webhooks")).Runs(leased)
	if cfg.PushURL != "" {
		o := hooks.NewOffline(nc.JS, cfg.PushURL, cfg.WebhookSecret, membership.New(pool, 0), pres.Online, unreads, cfg.ProjectorBatch, m, log.With("role", "push"))
		runs = append(runs, leased(hooks.OfflineConsumer, o.Run))
	}
	return runs
}
