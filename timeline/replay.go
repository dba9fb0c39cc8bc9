package timeline

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/seqchat/seqchat/events"
)

// Replay hands every event of TIMELINE, from the first to the last stored
// when it starts, to fn in batches of up to batch, in stream order. It is
// what rebuilds a projection from scratch.
func Replay(ctx context.Context, js jetstream.JetStream, batch int, fn func([]Stored) error) error {
	stream, err := js.Stream(ctx, TimelineStream)
	if err != nil {
		return fmt.Errorf("replay: open %s: %w", TimelineStream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	last, pending := info.State.LastSeq, info.State.Msgs
	if pending == 0 {
		return nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	for pending > 0 {
		// Ask for no more than is left, so the last fetch does not wait out
		// its timeout for messages that will never come.
		b, err := cons.Fetch(int(min(uint64(max(batch, 1)), pending)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return fmt.Errorf("replay: fetch: %w", err)
		}
		var stored []Stored
		for m := range b.Messages() {
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("replay: %w", err)
			}
			ev, err := events.DecodeEvent(m.Data())
			if err != nil {
				return fmt.Errorf("replay: event #%d: %w", md.Sequence.Stream, err)
			}
			stored = append(stored, Stored{Event: ev, StreamSeq: md.Sequence.Stream, Origin: m.Headers().Get(HeaderOrigin)})
			pending = md.NumPending
			if md.Sequence.Stream >= last {
				pending = 0
			}
		}
		if err := b.Error(); err != nil {
			return fmt.Errorf("replay: fetch: %w", err)
		}
		if len(stored) == 0 {
			return nil
		}
		if err := fn(stored); err != nil {
			return err
		}
	}
	return nil
}
