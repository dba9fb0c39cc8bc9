package hooks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/seqchat/seqchat/timeline"
)

// Consumers of TIMELINE that hooks hold.
const (
	webhookPrefix = "webhook-"
	// AckWait outlasts the longest backoff plus an attempt: a batch being
	// retried is kept (InProgress) before each attempt, so the server
	// never redelivers it behind our back.
	ackWait = 2*MaxBackoff + AttemptTimeout
	// inactive is how long a consumer lives with nobody pulling from it:
	// a URL removed from the configuration stops costing after that, while
	// any outage of the projectors shorter than that loses nothing.
	inactive = 7 * 24 * time.Hour
)

// ConsumerName is the durable consumer (and lease) of a webhook URL: named
// from a hash of the URL, so the same URL keeps its cursor across restarts
// and a changed list of URLs leaves the others' cursors alone.
func ConsumerName(rawURL string) string {
	h := sha256.Sum256([]byte(rawURL))
	return webhookPrefix + hex.EncodeToString(h[:8])
}

// Leased runs fn while this process holds the lease named key (one active
// instance per consumer, others standing by).
type Leased func(key string, fn func(ctx context.Context) error) func(ctx context.Context) error

// Webhooks POSTs every TIMELINE event to each URL.
type Webhooks struct {
	js    jetstream.JetStream
	urls  []string
	batch int
	post  *poster
	m     *Metrics
	log   *slog.Logger
}

// NewWebhooks returns the webhooks of urls, signed with secret, sending up
// to batch events in one POST.
func NewWebhooks(js jetstream.JetStream, urls []string, secret string, batch int, m *Metrics, log *slog.Logger) *Webhooks {
	return &Webhooks{js: js, urls: urls, batch: min(max(batch, 1), 500), post: newPoster(secret, m, log), m: m, log: log}
}

// Runs returns one run per URL, each under its own lease.
func (w *Webhooks) Runs(leased Leased) []func(context.Context) error {
	var runs []func(context.Context) error
	for _, u := range w.urls {
		t := newTarget("webhook", u)
		runs = append(runs, leased(ConsumerName(u), func(ctx context.Context) error { return w.run(ctx, t) }))
	}
	return runs
}

// run delivers to one URL until ctx ends or its consumer must be set up
// again (then the lease's holder runs it anew, from the ack floor).
func (w *Webhooks) run(ctx context.Context, t target) error {
	name := ConsumerName(t.url)
	// Created with DeliverNew the first time: the URL gets every event
	// appended from then on. Afterwards Reset resumes at the ack floor.
	cons, err := resetConsumer(ctx, w.js, name, "webhook "+t.label, w.batch)
	if err != nil {
		return err
	}
	w.log.Info("delivering webhooks", "url", t.label, "consumer", name)
	stop := watchPending(ctx, cons, w.m.pending.WithLabelValues(t.hook, t.label))
	defer stop()
	body := make([]byte, 0, 64<<10)
	return timeline.ConsumeBatches(ctx, cons, w.batch, w.log, func(ctx context.Context, msgs []jetstream.Msg) error {
		// Each event exactly as TIMELINE holds it (and as history and the
		// socket show it), in stream order: seq order per conversation.
		body = append(body[:0], `{"events":[`...)
		for i, m := range msgs {
			if i > 0 {
				body = append(body, ',')
			}
			body = append(body, m.Data()...)
		}
		body = append(body, "]}"...)
		if err := w.post.deliver(ctx, t, body, len(msgs), func() { keep(msgs) }); err != nil {
			return err
		}
		_ = msgs[len(msgs)-1].Ack() // AckAll: acks the whole batch
		return nil
	})
}

// keep tells the server the batch is still being worked on.
func keep(msgs []jetstream.Msg) {
	for _, m := range msgs {
		_ = m.InProgress()
	}
}

// watchPending keeps g at the consumer's events not yet acknowledged, every
// few seconds, until stop is called.
func watchPending(ctx context.Context, cons jetstream.Consumer, g interface{ Set(float64) }) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			ictx, icancel := context.WithTimeout(ctx, 2*time.Second)
			if info, err := cons.Info(ictx); err == nil {
				g.Set(float64(info.NumPending + uint64(info.NumAckPending)))
			}
			icancel()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

// resetConsumer (re)creates a hook's durable consumer of TIMELINE: from
// what is new when it first starts, acked a batch at a time, kept for a
// week while nobody pulls from it.
func resetConsumer(ctx context.Context, js jetstream.JetStream, name, description string, batch int) (jetstream.Consumer, error) {
	return timeline.ResetConsumer(ctx, js, timeline.TimelineStream, jetstream.ConsumerConfig{
		Durable:           name,
		Description:       description,
		AckPolicy:         jetstream.AckAllPolicy,
		AckWait:           ackWait,
		MaxAckPending:     20 * batch,
		DeliverPolicy:     jetstream.DeliverNewPolicy,
		InactiveThreshold: inactive,
	})
}
