package timeline

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Leases give one process at a time the right to do a piece of
// work (sequence a partition, run a projector), through keys with a TTL in a
// JetStream KV bucket: the holder renews its key; when it dies, the key
// expires and another process takes over within one TTL.

// HoldLease runs fn whenever this process holds the lease on key, until ctx
// ends: it tries to take the lease every ttl/3, renews it as often while fn
// runs, and cancels fn's context as soon as the lease is lost. fn returning
// early gives the lease back. On the way out the lease is released, so a
// peer takes over at once rather than after the TTL.
func HoldLease(ctx context.Context, kv jetstream.KeyValue, key, owner string, ttl time.Duration, log *slog.Logger, fn func(ctx context.Context) error) {
	tick := time.NewTicker(ttl / 3)
	defer tick.Stop()
	for {
		if rev, err := kv.Create(ctx, key, []byte(owner)); err == nil {
			holdLease(ctx, kv, key, owner, rev, tick, log, fn)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func holdLease(ctx context.Context, kv jetstream.KeyValue, key, owner string, rev uint64, tick *time.Ticker, log *slog.Logger, fn func(ctx context.Context) error) {
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fn(fctx); err != nil && fctx.Err() == nil {
			log.Error("leased work stopped", "lease", key, "err", err)
		}
	}()
	defer func() {
		cancel()
		<-done
		_ = kv.Delete(context.WithoutCancel(ctx), key, jetstream.LastRevision(rev))
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-done:
			return
		case <-tick.C:
			next, err := kv.Update(ctx, key, []byte(owner), rev)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("lost lease", "lease", key, "err", err)
				}
				return
			}
			rev = next
		}
	}
}
