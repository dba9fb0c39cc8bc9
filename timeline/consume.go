package timeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/seqchat/seqchat/events"
)

// Consumers. Each runs a JetStream pull consumer as a loop over batches:
// messages are gathered as they arrive (no waiting for a full batch) and
// handed to a function that processes them together; the loop retries a
// failed batch itself, so a transient failure never reorders or drops work.
// ConsumeBatches hands over the messages; ConsumeEvents, for TIMELINE's
// projections, the events they hold, decoded once per batch.

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
	var batch []jetstream.Msg
	take := func(msgs []jetstream.Msg, _ []*jetstream.MsgMetadata) { batch = msgs }
	return consume(ctx, cons, max, 0, log, take, func(ctx context.Context) error { return h(ctx, batch) })
}

// Events is one batch of TIMELINE as a projection takes it: the events that
// decoded, in stream order, and the messages to ack. The slices are reused
// for the next batch: a handler that keeps them past its return must copy.
type Events struct {
	// Stored holds the events that decoded; Msgs[i] is the message
	// Stored[i] came from (its data is the event as TIMELINE holds it).
	Stored []Stored
	Msgs   []jetstream.Msg

	all         []jetstream.Msg // the whole batch, undecodable messages too
	first, last *jetstream.MsgMetadata
	late        *lateAck // nil: Ack acks at once
	// pending is Pending's answer for a batch from a feed (RunFed), which
	// has no messages: there is nothing to ack, the runner keeps the cursor.
	pending uint64
}

// Ack acks the whole batch, undecodable messages too, on a consumer that
// acks everything up to a message (jetstream.AckAllPolicy, as projections'
// consumers are). On a projection with an AckDelay the ack may follow a
// little later, covering the batches handled meanwhile too.
func (b *Events) Ack() {
	if len(b.all) == 0 {
		return // fed: nothing to ack
	}
	last := b.all[len(b.all)-1]
	if b.late != nil {
		b.late.ack(last, len(b.all))
		return
	}
	_ = last.Ack()
}

// InProgress tells the server the whole batch is still being worked on.
func (b *Events) InProgress() {
	for _, m := range b.all {
		_ = m.InProgress()
	}
}

// FirstStreamSeq is the stream sequence of the batch's first message.
func (b *Events) FirstStreamSeq() uint64 {
	if b.first == nil {
		return b.Stored[0].StreamSeq // fed: never empty
	}
	return b.first.Sequence.Stream
}

// Pending is how many messages the consumer had still to deliver after the
// batch: the projection's lag.
func (b *Events) Pending() uint64 {
	if b.last == nil {
		return b.pending
	}
	return b.last.NumPending
}

// take decodes msgs into b. An event that does not decode is logged and
// skipped: no retry would make it decode, and the batch's ack covers it.
func (b *Events) take(msgs []jetstream.Msg, mds []*jetstream.MsgMetadata, log *slog.Logger) {
	b.all, b.first, b.last = msgs, mds[0], mds[len(mds)-1]
	b.Stored, b.Msgs = b.Stored[:0], b.Msgs[:0]
	for i, m := range msgs {
		ev, err := events.DecodeEvent(m.Data())
		if err != nil {
			log.Error("undecodable event in TIMELINE; skipped", "subject", m.Subject(), "stream_seq", mds[i].Sequence.Stream, "err", err)
			continue
		}
		b.Stored = append(b.Stored, Stored{Event: ev, StreamSeq: mds[i].Sequence.Stream, Origin: m.Headers().Get(HeaderOrigin)})
		b.Msgs = append(b.Msgs, m)
	}
}

// EventHandler processes a batch of TIMELINE, decoded, in order. Like a
// BatchHandler it returns an error to have the same batch retried and acks
// the batch itself.
type EventHandler func(ctx context.Context, b *Events) error

// ConsumeEvents is ConsumeBatches for a consumer of TIMELINE: each batch is
// decoded once, whatever the retries, and h gets the events.
func ConsumeEvents(ctx context.Context, cons jetstream.Consumer, max int, log *slog.Logger, h EventHandler) error {
	return consumeEvents(ctx, cons, max, 0, 0, log, h)
}

func consumeEvents(ctx context.Context, cons jetstream.Consumer, max int, linger, ackDelay time.Duration, log *slog.Logger, h EventHandler) error {
	b := &Events{Stored: make([]Stored, 0, max), Msgs: make([]jetstream.Msg, 0, max)}
	if ackDelay > 0 {
		b.late = &lateAck{delay: ackDelay, max: max}
		// What was handled is acked on the way out too: whoever consumes
		// next need not have it again.
		defer b.late.flush()
	}
	take := func(msgs []jetstream.Msg, mds []*jetstream.MsgMetadata) { b.take(msgs, mds, log) }
	return consume(ctx, cons, max, linger, log, take, func(ctx context.Context) error { return h(ctx, b) })
}

// lateAck acks a consumer (jetstream.AckAllPolicy) at most once per delay
// while batches come fast, and at least once per max messages: at a few
// events a millisecond, where each batch is an event or two, an ack per
// batch is a message and its handling in the server per event. An ack left
// waiting goes out when the delay is up, so nothing stays unacked for long
// after the traffic stops.
type lateAck struct {
	delay time.Duration
	max   int

	mu      sync.Mutex
	pending jetstream.Msg // the last message handled and not acked
	n       int           // how many messages an ack of pending covers
	last    time.Time     // when the last ack went out
	timer   *time.Timer   // armed while pending waits
}

func (a *lateAck) ack(m jetstream.Msg, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pending, a.n = m, a.n+n
	wait := a.delay - time.Since(a.last)
	if a.n >= a.max || wait <= 0 {
		a.flushLocked()
		return
	}
	if a.timer == nil {
		a.timer = time.AfterFunc(wait, a.flush)
	}
}

func (a *lateAck) flush() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.flushLocked()
}

func (a *lateAck) flushLocked() {
	if a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
	if a.pending == nil {
		return
	}
	_ = a.pending.Ack()
	a.pending, a.n, a.last = nil, 0, time.Now()
}

// consume is ConsumeBatches' loop: take gets each batch and its messages'
// metadata once, then h runs until it succeeds or gives up. With linger, a
// batch that is not full when its first message comes waits up to linger
// for more: a projection pays per batch (a Postgres or Redis round trip),
// so at a few events a millisecond a handful a batch costs a fraction of
// one each.
func consume(ctx context.Context, cons jetstream.Consumer, max int, linger time.Duration, log *slog.Logger, take func([]jetstream.Msg, []*jetstream.MsgMetadata), h func(context.Context) error) error {
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
	mds := make([]*jetstream.MsgMetadata, 0, max)
	wait := time.NewTimer(time.Hour)
	wait.Stop()
	var last uint64 // consumer sequence of the last message taken
	for {
		batch, mds = batch[:0], mds[:0]
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
		if linger > 0 {
			wait.Reset(linger)
		}
	gather:
		for len(batch) < max {
			select {
			case m, ok := <-ch:
				if !ok {
					break gather
				}
				batch = append(batch, m)
				continue
			default:
			}
			if linger <= 0 {
				break
			}
			select {
			case m, ok := <-ch:
				if !ok {
					break gather
				}
				batch = append(batch, m)
			case <-wait.C:
				break gather
			case <-ctx.Done():
				break gather
			}
		}
		if linger > 0 {
			wait.Stop()
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
			mds = append(mds, md)
		}
		take(batch, mds)
		done, err := RetryBatch(ctx, log, len(batch), func() {
			for _, m := range batch {
				_ = m.InProgress() // keep them ours while we retry
			}
		}, h)
		if err != nil {
			return fmt.Errorf("consume: %w", err)
		}
		if !done {
			return nil
		}
		batch = batch[:0]
	}
}

// batchAttempts is how often a batch is tried before its loop gives up
// (a consumer is set up again, a fed projection restarts, fed fanout drops
// the batch).
const batchAttempts = 10

// RetryBatch runs h, the handling of one batch of size events, until it
// succeeds (done), ctx ends (not done, no error), or it has failed
// batchAttempts times, about ten seconds (the last error). Between tries
// it logs, calls keep (nil: nothing) and waits, 50 ms at first, doubling
// up to 2 s: a transient failure never reorders or drops work. Every loop
// over batches (consumers, fed projections, fed fanout) retries so.
func RetryBatch(ctx context.Context, log *slog.Logger, size int, keep func(), h func(context.Context) error) (done bool, err error) {
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := h(ctx)
		if err == nil {
			return true, nil
		}
		if ctx.Err() != nil {
			return false, nil
		}
		if attempt >= batchAttempts {
			return false, fmt.Errorf("batch failed %d times: %w", attempt, err)
		}
		log.Warn("batch failed; retrying", "err", err, "size", size, "backoff", backoff)
		if keep != nil {
			keep()
		}
		select {
		case <-ctx.Done():
			return false, nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
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
	return resetConsumer(ctx, js, stream, cfg, 0)
}

// resetConsumer is ResetConsumer for a consumer whose work is known done
// up to stream sequence past too (a projection's cursor, fed.go), which it
// starts after if that is further than the ack floor.
func resetConsumer(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig, past uint64) (jetstream.Consumer, error) {
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
			cfg.OptStartSeq = max(info.AckFloor.Stream, past) + 1
		}
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return nil, fmt.Errorf("reset consumer %s: %w", cfg.Durable, err)
	case past > 0 && !workQueue:
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = past + 1
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", cfg.Durable, err)
	}
	return cons, nil
}

// Projection says how a projector consumes TIMELINE.
type Projection struct {
	// Name is the durable consumer's.
	Name string
	// Start is where a consumer that never existed begins.
	Start jetstream.DeliverPolicy
	// Batch is the most events handed over at once.
	Batch int
	// Linger is how long a batch that is not full waits for more once its
	// first event is in (0: not at all). A projection whose readers do not
	// wait on it (history, unread counts) trades a few milliseconds of lag
	// for far fewer round trips at moderate rates; fanout, which clients
	// wait on, does not linger.
	Linger time.Duration
	// AckDelay is how long an ack may wait to cover later batches too (0:
	// each batch is acked as the handler asks). Only for a projection whose
	// handler may see an event again without harm after a restart (fanout:
	// edges drop a seq they have already), since what was handled in the
	// last AckDelay before a crash comes again.
	AckDelay time.Duration
	// Feed, if set, is where the sequencer of this process offers the
	// events it appends: RunProjection then runs from it (RunFed), not
	// from a consumer. Only where that sequencer appends every event of
	// TIMELINE (config.Config.Pipelined).
	Feed *Feed
}

// RunProjection runs a projector's durable consumer of TIMELINE: reset to
// its ack floor (one active instance at a time holds it, under a lease),
// acked a whole batch at a time, handing batches to h decoded
// (ConsumeEvents).
func RunProjection(ctx context.Context, js jetstream.JetStream, p Projection, log *slog.Logger, h EventHandler) error {
	if p.Feed != nil {
		return RunFed(ctx, js, p, log, h)
	}
	// Where the projection ran fed (fed.go) its consumer was left behind
	// or removed: go on from its cursor rather than replay what it did.
	past, err := newCursors(js).get(ctx, p.Name)
	if err != nil {
		return err
	}
	cons, err := resetConsumer(ctx, js, TimelineStream, jetstream.ConsumerConfig{
		Durable:       p.Name,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       10 * time.Second,
		MaxAckPending: 20 * p.Batch,
		DeliverPolicy: p.Start,
	}, past)
	if err != nil {
		return err
	}
	return consumeEvents(ctx, cons, p.Batch, p.Linger, p.AckDelay, log, h)
}
