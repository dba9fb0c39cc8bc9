package app

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seqchat/seqchat/internal/api"
	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/internal/natsconn"
	"github.com/seqchat/seqchat/internal/push"
)

// serverOptions wires the calls of the app's own backend (/v1/server/).
func serverOptions(ctx context.Context, cfg config.Config, nc *natsconn.Conn, frames push.Frames, pool *pgxpool.Pool) (api.ServerOptions, error) {
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
