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
// batch retried; it acks the messages itself.
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
