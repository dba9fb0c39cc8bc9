package sequencer

import (
	"cmp"
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/timeline"
)

// pending is one command on its way to the timeline.
type pending struct {
	cmd events.Command
	// key is cmd's dedupe key (Command.DedupeKey), made once.
	key    string
	reply  string
	origin string
	ev     events.Event
	// streamSeq is where ev is in TIMELINE, once appended (or, for a
	// duplicate, where the original is).
	streamSeq uint64
	result    *events.Result
	// sameAs is an earlier command of the batch this one repeats the effect
	// of (a second recall of one target); it gets that one's result.
	sameAs *pending
}

// process sequences one batch of a partition's commands, in order.
func (s *Sequencer) process(ctx context.Context, state map[string]*timeline.Position, msgs []jetstream.Msg) error {
	start := time.Now()
	work, unseen := s.decode(msgs)
	if err := s.admit(ctx, work, unseen); err != nil {
		return err
	}
	if err := s.append(ctx, state, work); err != nil {
		// What was stored before the failure is answered from memory when
		// the batch comes again, but fanned out only now.
		s.offer(work)
		return err
	}
	// Answer at once; remembering the ids in DEDUPE can follow.
	for _, p := range work {
		if p.sameAs != nil {
			p.result = p.sameAs.result
		}
	}
	s.answer(work)
	s.offer(work)
	s.remember(work, msgs)
	s.batchSize.Observe(float64(len(work)))
	s.batchTime.Observe(time.Since(start).Seconds())
	return nil
}

// decode turns a batch's messages into pending commands, in order, answering
// from memory those it remembers; unseen are the dedupe keys of the others,
// for DEDUPE to be asked about all at once.
func (s *Sequencer) decode(msgs []jetstream.Msg) (work []*pending, unseen []string) {
	work = make([]*pending, 0, len(msgs))
	take := func(p *pending, cmd events.Command) {
		p.cmd, p.key = cmd, cmd.DedupeKey()
		if r, ok := s.recent.get(p.key); ok {
			p.result = &r
			s.dups.Inc()
		} else {
			unseen = append(unseen, p.key)
		}
		work = append(work, p)
	}
	for _, m := range msgs {
		origin := m.Headers().Get(timeline.HeaderOrigin)
		if m.Headers().Get(timeline.HeaderBatch) != "" {
			// Several commands, each connection's in the order it sent
			// them; one from another connection than the header's says so.
			q, err := events.DecodeBatch(m.Data())
			if err != nil {
				s.opt.Log.Warn("dropping a malformed command batch", "err", err, "origin", origin)
				continue // no reply subject to refuse it on; acked below
			}
			// One allocation for the message's commands, not one each.
			ps := make([]pending, len(q))
			for i, c := range q {
				ps[i] = pending{reply: c.Reply, origin: cmp.Or(c.Origin, origin)}
				take(&ps[i], c.Cmd)
			}
			continue
		}
		p := &pending{reply: m.Headers().Get(timeline.HeaderReply), origin: origin}
		if cmd, err := events.DecodeCommand(m.Data()); err != nil {
			p.result = refusal(events.Errorf(events.CodeBadRequest, "malformed command"))
			work = append(work, p)
		} else {
			take(p, cmd)
		}
	}
	return work, unseen
}

// remember queues the appended commands' results for DEDUPE and msgs to
// be acked once they are stored (rememberLoop). The next batch need not
// wait for that: should remembering fail, the commands stay unacked and
// come back (as duplicates, answered with their seq) to be remembered
// again.
func (s *Sequencer) remember(work []*pending, msgs []jetstream.Msg) {
	s.toRemember.mu.Lock()
	defer s.toRemember.mu.Unlock()
	for _, p := range work {
		if p.ev.Seq == 0 || p.result == nil || p.result.Code != "" {
			continue
		}
		s.toRemember.results = append(s.toRemember.results, timeline.Remembered{Key: p.key, Result: *p.result})
	}
	// msgs is the caller's buffer: this appends copies of its elements.
	s.toRemember.msgs = append(s.toRemember.msgs, msgs...)
	select {
	case s.toRemember.wake <- struct{}{}:
	default:
	}
}

// rememberQueue is what waits for DEDUPE, of every partition's batches.
type rememberQueue struct {
	mu      sync.Mutex
	results []timeline.Remembered
	msgs    []jetstream.Msg
	wake    chan struct{}
}

// rememberLoop writes what remember queues, everything queued at once
// (one PubAck wait for the batches of every partition that came while the
// last write was under way, one goroutine for all), then acks the
// commands; until stop is closed, once no partition queues any more, and
// then what is left, briefly even when ctx has ended.
func (s *Sequencer) rememberLoop(ctx context.Context, stop <-chan struct{}) {
	q := &s.toRemember
	var results []timeline.Remembered
	var msgs []jetstream.Msg
	write := func(ctx context.Context) {
		q.mu.Lock()
		results, q.results = q.results, results[:0]
		msgs, q.msgs = q.msgs, msgs[:0]
		q.mu.Unlock()
		if len(msgs) == 0 {
			return
		}
		remember := s.dedupe.Remember
		if s.opt.AtomicBatches {
			remember = s.dedupe.RememberBatch
		}
		if err := remember(ctx, results); err != nil {
			if ctx.Err() == nil {
				s.opt.Log.Warn("remember command ids; leaving the commands for redelivery", "err", err)
			}
		} else {
			for _, m := range msgs {
				if err := m.Ack(); err != nil {
					s.opt.Log.Warn("ack command", "err", err)
				}
			}
		}
		clear(results)
		clear(msgs)
	}
	for {
		select {
		case <-q.wake:
			write(ctx)
		case <-stop:
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			write(wctx)
			cancel()
			return
		}
	}
}
