package fanout

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/seqchat/seqchat/timeline"
)

// In the one-process mode this process's sequencer appends every event of
// TIMELINE, so it can hand fanout each batch it appended (Offer) instead of
// fanout reading TIMELINE back through a durable consumer: a delivery from
// the stream, its ack and a decode fewer for every event, and an event
// reaches the edges as soon as it is acked. A durable consumer buys nothing
// there: the sockets live in the same process, so a crash ends them too, and
// their clients sync when they reconnect. Delivery stays what it always was
// (at most once per edge, docs at the top of fanout.go): an event fanout
// drops is a hole an edge fills from history when the conversation's next
// event comes, and a command whose event was stored but not confirmed is
// resent by its client, which offers the event again.

// feedBatches is how many offered batches wait for fanout before further
// ones are dropped. The sequencer never waits on fanout.
const feedBatches = 4096

type feed struct {
	batches chan []timeline.Stored
	queued  atomic.Int64 // events waiting in batches
}

// TakeOffered makes fanout deliver what Offer hands it rather than what
// TIMELINE holds. Only for a process whose sequencer appends every event
// of TIMELINE (config.Config.Pipelined): an event nobody offers is not
// fanned out. Call it before Run.
func (p *Projector) TakeOffered() { p.feed = &feed{batches: make(chan []timeline.Stored, feedBatches)} }

// Offer hands fanout events just appended to TIMELINE, in each
// conversation's seq order, with Origin set; fanout shares the slice with
// the sequencer's other takers and only reads it. It
// never blocks: when fanout is feedBatches batches behind, the events are
// dropped (and counted).
func (p *Projector) Offer(evs []timeline.Stored) {
	if p.feed == nil || len(evs) == 0 {
		return
	}
	p.feed.queued.Add(int64(len(evs)))
	select {
	case p.feed.batches <- evs:
	default:
		p.feed.queued.Add(-int64(len(evs)))
		p.dropped.Add(float64(len(evs)))
	}
}

// runFed delivers what is offered until ctx ends, a batch of up to p.batch
// events at a time (more when one offer was bigger), retrying a batch that
// fails for about ten seconds (timeline.RetryBatch) before dropping it.
func (p *Projector) runFed(ctx context.Context) error {
	// A consumer a fanout that read TIMELINE left behind would only hold
	// state nobody reads.
	if err := p.js.DeleteConsumer(ctx, timeline.TimelineStream, ConsumerName); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) && ctx.Err() == nil {
		p.log.Warn("remove the unused fanout consumer", "err", err)
	}
	var batch []timeline.Stored
	data := func(i int) []byte { return batch[i].Event.Encode() }
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return nil
		case evs := <-p.feed.batches:
			batch = append(batch, evs...)
		}
	gather:
		for len(batch) < p.batch {
			select {
			case evs := <-p.feed.batches:
				batch = append(batch, evs...)
			default:
				break gather
			}
		}
		start := time.Now()
		done, err := timeline.RetryBatch(ctx, p.log, len(batch), nil, func(ctx context.Context) error { return p.deliver(ctx, batch, data) })
		if err != nil {
			p.log.Warn("dropping a batch fanout could not deliver; edges will fill the hole from history", "err", err, "size", len(batch))
			p.dropped.Add(float64(len(batch)))
		} else if !done {
			return nil // ctx ended
		}
		p.batchTime.Observe(time.Since(start).Seconds())
		p.lag.Set(float64(p.feed.queued.Add(-int64(len(batch)))))
	}
}
