package sequencer

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/seqchat/seqchat/timeline"
)

// ownedLog logs which partitions a sequencer owns in one line once they
// have settled, instead of a line per partition: a start (or a handover)
// takes several at once.
type ownedLog struct {
	log   *slog.Logger
	total int
	quiet time.Duration

	mu    sync.Mutex
	owned map[int]bool
	timer *time.Timer
}

func (o *ownedLog) change(p int, owned bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if owned {
		o.owned[p] = true
	} else {
		delete(o.owned, p)
	}
	if o.timer != nil {
		o.timer.Stop()
	}
	o.timer = time.AfterFunc(o.quiet, o.report)
}

func (o *ownedLog) report() {
	o.mu.Lock()
	list := make([]int, 0, len(o.owned))
	for p := range o.owned {
		list = append(list, p)
	}
	o.mu.Unlock()
	slices.Sort(list)
	o.log.Info("sequencing partitions", "owned", len(list), "of", o.total, "partitions", list)
}

// stop drops a pending report (the sequencer is done).
func (o *ownedLog) stop() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.timer != nil {
		o.timer.Stop()
	}
}

// Run sequences whatever partitions it can lease until ctx ends.
func (s *Sequencer) Run(ctx context.Context) error {
	defer s.owning.stop()
	var wg sync.WaitGroup
	// DEDUPE's writer outlives the partitions: what they queue last is
	// written on the way out.
	stop, remembered := make(chan struct{}), make(chan struct{})
	go func() { defer close(remembered); s.rememberLoop(ctx, stop) }()
	defer func() { close(stop); <-remembered }()
	for p := 0; p < s.opt.Partitions; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			timeline.HoldLease(ctx, s.leases, fmt.Sprintf("p%d", p), s.opt.InstanceID, s.opt.LeaseTTL, s.opt.Log, func(ctx context.Context) error {
				s.owned.Inc()
				defer s.owned.Dec()
				return s.runPartition(ctx, p)
			})
		}()
	}
	wg.Wait()
	return nil
}

// runPartition sequences partition p. It resets the partition's consumer,
// so that whatever a previous owner had been handed but not acked is
// delivered again, in order, before anything newer.
func (s *Sequencer) runPartition(ctx context.Context, p int) error {
	name := fmt.Sprintf("sequencer-p%d", p)
	cons, err := timeline.ResetConsumer(ctx, s.js, timeline.CmdsStream, jetstream.ConsumerConfig{
		Durable:       name,
		FilterSubject: timeline.CmdPartitionFilter(p),
		AckPolicy:     jetstream.AckExplicitPolicy, // a work queue wants each one
		AckWait:       30 * time.Second,
		MaxAckPending: 20 * s.opt.Batch,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return err
	}
	s.opt.Log.Debug("sequencing partition", "partition", p)
	s.owning.change(p, true)
	defer s.owning.change(p, false)
	state := map[string]*timeline.Position{}
	return timeline.ConsumeBatches(ctx, cons, s.opt.Batch, s.opt.Log, func(ctx context.Context, batch []jetstream.Msg) error {
		return s.process(ctx, state, batch)
	})
}
