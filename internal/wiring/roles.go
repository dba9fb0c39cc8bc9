package wiring

import (
	"context"
	"fmt"

	"github.com/seqchat/seqchat/internal/api"
	"github.com/seqchat/seqchat/internal/auth"
	"github.com/seqchat/seqchat/internal/edge"
	"github.com/seqchat/seqchat/internal/postgres"
	"github.com/seqchat/seqchat/internal/projector/fanout"
	"github.com/seqchat/seqchat/internal/projector/history"
	"github.com/seqchat/seqchat/internal/projector/hooks"
	unreadprojector "github.com/seqchat/seqchat/internal/projector/unread"
	"github.com/seqchat/seqchat/internal/sequencer"
	"github.com/seqchat/seqchat/internal/webui"
	"github.com/seqchat/seqchat/timeline"
)

// One function per role: each wires its role to the process's stores and
// adds what it runs; Start calls those of the roles it was asked for.

// wireSequencer adds the sequencer: it takes the partitions it can lease.
func (p *process) wireSequencer(ctx context.Context) error {
	cfg := p.cfg
	seq, err := sequencer.New(ctx, p.nc.NC, p.nc.JS, postgres.NewMemberCache(p.pool, 0), sequencer.Options{
		InstanceID: cfg.InstanceID, Partitions: cfg.Partitions, Batch: cfg.SequencerBatch,
		LeaseTTL: cfg.LeaseTTL, RecallWindow: cfg.RecallWindow, Log: p.log.With("role", "sequencer"), Metrics: p.reg,
		AtomicBatches: cfg.AtomicBatches(), Pipelined: cfg.Pipelined(),
		History: p.hist,
	})
	if err != nil {
		return err
	}
	p.seq = seq
	p.run(seq.Run)
	return nil
}

// wireProjectors adds the projectors (history, unread, fanout, and the
// webhooks and offline push when configured), each under its own lease.
func (p *process) wireProjectors(ctx context.Context) error {
	cfg := p.cfg
	leases, err := p.nc.JS.KeyValue(ctx, timeline.LeaseBucket)
	if err != nil {
		return fmt.Errorf("open bucket %s: %w", timeline.LeaseBucket, err)
	}
	// Each projector runs in one process at a time (it acks a batch at
	// once and applies events in order); replicas stand by and take
	// over within a lease TTL.
	leased := func(name string, run func(context.Context) error) func(context.Context) error {
		return func(ctx context.Context) error {
			timeline.HoldLease(ctx, leases, name, cfg.InstanceID, cfg.LeaseTTL, p.log.With("role", name), run)
			return nil
		}
	}
	projector := func(name string, run func(context.Context) error) func(context.Context) error {
		return leased("projector-"+name, run)
	}
	p.fanout = fanout.New(p.nc.NC, p.nc.JS, postgres.NewMemberCache(p.pool, 0), p.pres, cfg.ProjectorBatch, p.log.With("role", "fanout"), p.reg)
	hist := history.NewProjector(postgres.NewHistoryWriter(p.pool), p.nc.JS, cfg.ProjectorBatch, cfg.ProjectorLinger, p.log.With("role", "projector"), p.reg)
	unreads := unreadprojector.NewProjector(p.unreads, p.pool, postgres.NewMemberCache(p.pool, 0), p.nc.JS, cfg.ProjectorBatch, cfg.ProjectorLinger, p.log.With("role", "unread"), p.reg)
	var unreadFed hooks.Progress // nil: the unread projection has its consumer
	if p.seq != nil && cfg.Pipelined() {
		// This process's sequencer appends every event: it hands them to
		// the projectors here (fed.go in fanout and in timeline).
		p.fanout.TakeOffered()
		p.seq.OfferLocally(p.fanout)
		hf, uf := timeline.NewFeed(history.ConsumerName, p.reg), timeline.NewFeed(unreadprojector.ConsumerName, p.reg)
		hist.TakeOffered(hf)
		unreads.TakeOffered(uf)
		p.seq.OfferLocally(hf)
		p.seq.OfferLocally(uf)
		unreadFed = uf
	}
	p.run(projector("history", hist.Run), projector("unread", unreads.Run), projector("fanout", p.fanout.Run))
	// Webhooks and offline push: one leased consumer per URL (server.go).
	p.run(p.hookRuns(leased, unreadFed)...)
	return nil
}

// front is what the api and the edges share: tokens, the command client,
// and the guards (guard.go).
type front struct {
	tokens *auth.Tokens
	sub    *timeline.Submitter
	guards *guards
}

// wireFront opens what the api and the edges share.
func (p *process) wireFront(ctx context.Context) (*front, error) {
	cfg := p.cfg
	tokens, err := auth.NewTokens(cfg.TokenSecret, cfg.TokenTTL)
	if err != nil {
		return nil, err
	}
	sub, err := timeline.NewSubmitter(ctx, p.nc.NC, p.nc.JS, cfg.Partitions)
	if err != nil {
		return nil, err
	}
	p.onClose(sub.Close)
	if p.seq != nil {
		p.seq.AnswerLocally(sub)
	}
	sub.Limit(cfg.CommandsInFlight, cfg.AdmissionWait, p.reg)
	g, err := p.newGuards(ctx)
	if err != nil {
		return nil, err
	}
	p.onClose(g.close)
	p.run(g.runs()...)
	return &front{tokens: tokens, sub: sub, guards: g}, nil
}

// wireAPI mounts REST (and the web client at "/", web/).
func (p *process) wireAPI(ctx context.Context, f *front) error {
	cfg := p.cfg
	opt := api.Options{
		PasswordCost: cfg.PasswordCost, CommandTimeout: cfg.CommandTimeout,
		MaxGroupMembers: cfg.MaxGroupMembers, Log: p.log.With("role", "api"),
		Online: p.pres.Online, Reads: p.reads, Unread: p.unreads,
		Metrics: p.reg, AccessLog: cfg.AccessLog,
	}
	f.guards.api(cfg, &opt)
	var err error
	if opt.Server, err = p.serverOptions(ctx, f.guards.frames); err != nil {
		return err
	}
	convs := postgres.NewConversations(p.pool)
	stores := api.Stores{
		Accounts: postgres.NewAccounts(p.pool), Friends: postgres.NewFriends(p.pool),
		Sessions: postgres.NewSessions(p.pool), Conversations: convs, Members: postgres.NewMembers(p.pool),
	}
	api.New(stores, f.tokens, f.sub, p.hist, opt).Mount(p.mux)
	webui.New().Mount(p.mux)
	return nil
}

// wireEdge mounts /v1/ws (beside REST in the one-process mode) and adds
// the edge's presence refresh and sweeps.
func (p *process) wireEdge(f *front) error {
	cfg := p.cfg
	opt := edge.Options{
		ID: cfg.InstanceID, OutboundSize: cfg.EdgeOutboundSize, RateLimits: cfg.RateLimits,
		CommandRate: cfg.CommandRate, CommandBurst: cfg.CommandBurst, CommandTimeout: cfg.CommandTimeout,
		FirstSyncWait: cfg.EdgeFirstSyncWait, Log: p.log.With("role", "edge"), Metrics: p.reg,
	}
	f.guards.edge(cfg, p.reads, &opt)
	e, err := edge.New(p.nc.NC, f.sub, p.hist, postgres.NewMembers(p.pool), f.tokens, p.pres, opt)
	if err != nil {
		return err
	}
	if p.fanout != nil {
		p.fanout.DeliverLocally(e)
	}
	e.Mount(p.mux)
	p.run(e.Run)
	return nil
}
