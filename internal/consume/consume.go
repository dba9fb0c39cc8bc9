// Package consume runs a JetStream pull consumer as a loop over batches:
// messages are gathered as they arrive (no waiting for a full batch) and
// handed to a function that processes them together; the loop retries a
// failed batch itself, so a transient failure never reorders or drops work.
package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Handler processes a batch in order. It returns an error to have the same
// batch retried; it acks the messages itself. The slice is reused for the
// next batch: a handler that acks later must copy it.
type Handler func(ctx context.Context, batch []jetstream.Msg) error

// Batches consumes cons until ctx ends, calling h with up to max messages at
// a time.
func Batches(ctx context.Context, cons jetstream.Consumer, max int, log *slog.Logger, h Handler) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(2*max), jetstream.PullExpiry(5*time.Second))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	ch := make(chan jetstream.Msg, max)
	go func() {
		defer close(ch)
		for {
			m, err := it.Next()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			if err != nil {
				log.Debug("consume", "err", err)
				continue
			}
			ch <- m
		}
	}()
	batch := make([]jetstream.Msg, 0, max)
	// On the way out, hand back everything we hold or the client buffered but
	// did not finish, so that whoever consumes next gets it now rather than
	// after AckWait. (A Nak of a message already acked is a no-op.)
	defer func() {
		it.Drain()
		for _, m := range batch {
			_ = m.Nak()
		}
		for m := range ch {
			_ = m.Nak()
		}
	}()
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-ch:
			if !ok {
				return nil
			}
			batch = append(batch, m)
		}
	gather:
		for len(batch) < max {
			select {
			case m, ok := <-ch:
				if !ok {
					break gather
				}
				batch = append(batch, m)
			default:
				break gather
			}
		}
		for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
			err := h(ctx, batch)
			if err == nil {
				batch = batch[:0]
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			log.Warn("batch failed; retrying", "err", err, "size", len(batch), "backoff", backoff)
			for _, m := range batch {
				_ = m.InProgress() // keep them ours while we retry
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
		}
	}
}

// Reset (re)creates the durable consumer cfg.Durable on stream so that it
// delivers, in order, everything after what was acked: the first message
// not acked by a previous holder comes first, before anything newer. A new
// holder of a lease calls it, since the consumer it inherits may still count
// messages as delivered to a dead process (redelivered only after AckWait,
// behind newer ones). A consumer that did not exist starts as cfg says; so
// does one on a work queue, which holds nothing but what is not acked.
func Reset(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("reset consumer %s: %w", cfg.Durable, err)
	}
	workQueue := st.CachedInfo().Config.Retention == jetstream.WorkQueuePolicy
	old, err := js.Consumer(ctx, stream, cfg.Durable)
	switch {
	case err == nil:
		info, err := old.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("reset consumer %s: %w", cfg.Durable, err)
		}
		if err := js.DeleteConsumer(ctx, stream, cfg.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("reset consumer %s: %w", cfg.Durable, err)
		}
		if !workQueue {
			cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
			cfg.OptStartSeq = info.AckFloor.Stream + 1
		}
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return nil, fmt.Errorf("reset consumer %s: %w", cfg.Durable, err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", cfg.Durable, err)
	}
	return cons, nil
}
