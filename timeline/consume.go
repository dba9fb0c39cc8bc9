package timeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Consumers. A JetStream pull consumer runs a JetStream pull consumer as a loop over batches:
// messages are gathered as they arrive (no waiting for a full batch) and
// handed to a function that processes them together; the loop retries a
// failed batch itself, so a transient failure never reorders or drops work.

// BatchHandler processes a batch in order. It returns an error to have the same
// batch retried; it acks the messages itself. The slice is reused for the
// next batch: a handler that acks later must copy it.
type BatchHandler func(ctx context.Context, batch []jetstream.Msg) error

// ErrDeliveryGap means a message the server delivered never arrived (lost
// in flight, as a NATS node failing over can do): the consumer must restart
// from its ack floor rather than ack past it.
var ErrDeliveryGap = errors.New("consume: a delivery was lost on the way")

// ConsumeBatches consumes cons until ctx ends, calling h with up to max messages at
// a time. It returns an error when the consumer must be set up again (with
// ResetConsumer): its iterator failed, a delivery went missing, or a batch kept
// failing. Whoever runs it restarts it then; nothing was acked past what
// was processed.
func ConsumeBatches(ctx context.Context, cons jetstream.Consumer, max int, log *slog.Logger, h BatchHandler) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(2*max), jetstream.PullExpiry(5*time.Second))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	ch := make(chan jetstream.Msg, max)
	var pumpErr error // read only after ch is closed
	go func() {
		defer close(ch)
		for {
			m, err := it.Next()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			if err != nil {
				pumpErr = fmt.Errorf("consume: %w", err)
				it.Stop()
				return
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
	var last uint64 // consumer sequence of the last message taken
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-ch:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return pumpErr
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
		for _, m := range batch {
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("consume: %w", err)
			}
			if last != 0 && md.Sequence.Consumer != last+1 {
				return fmt.Errorf("%w: delivery %d after %d", ErrDeliveryGap, md.Sequence.Consumer, last)
			}
			last = md.Sequence.Consumer
		}
		backoff := 50 * time.Millisecond
		for attempt := 1; ; attempt++ {
			err := h(ctx, batch)
			if err == nil {
				batch = batch[:0]
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			if attempt >= 10 {
				return fmt.Errorf("consume: batch failed %d times: %w", attempt, err)
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
			backoff = min(2*backoff, 2*time.Second)
		}
	}
}

// ResetConsumer (re)creates the durable consumer cfg.Durable on stream so that it
// delivers, in order, everything after what was acked: the first message
// not acked by a previous holder comes first, before anything newer. A new
// holder of a lease calls it, since the consumer it inherits may still count
// messages as delivered to a dead process (redelivered only after AckWait,
// behind newer ones). A consumer that did not exist starts as cfg says; so
// does one on a work queue, which holds nothing but what is not acked.
func ResetConsumer(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
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

// RunProjection runs a projector's durable consumer of stream: reset to its ack
// floor (one active instance at a time holds it, under a lease), acked a
// whole batch at a time, handing batches to h. start says where a consumer
// that never existed begins.
func RunProjection(ctx context.Context, js jetstream.JetStream, stream, name string, start jetstream.DeliverPolicy, batch int, log *slog.Logger, h BatchHandler) error {
	cons, err := ResetConsumer(ctx, js, stream, jetstream.ConsumerConfig{
		Durable:       name,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       10 * time.Second,
		MaxAckPending: 20 * batch,
		DeliverPolicy: start,
	})
	if err != nil {
		return err
	}
	return ConsumeBatches(ctx, cons, batch, log, h)
}
