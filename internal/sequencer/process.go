package sequencer

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/timeline"
)

// pending is one command on its way to the timeline.
type pending struct {
	cmd    events.Command
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
	if err := s.remember(ctx, work, msgs); err != nil {
		return err
	}
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
		if r, ok := s.recent.get(cmd.DedupeKey()); ok {
			p.cmd, p.result = cmd, &r
			s.dups.Inc()
		} else {
			p.cmd = cmd
			unseen = append(unseen, cmd.DedupeKey())
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

// remember stores the appended commands' results in DEDUPE (one atomic
// write for the batch with AtomicBatches, else pipelined writes) and acks
// msgs once they are stored.
func (s *Sequencer) remember(ctx context.Context, work []*pending, msgs []jetstream.Msg) error {
	var results []timeline.Remembered
	for _, p := range work {
		if p.ev.Seq == 0 || p.result == nil || p.result.Code != "" {
			continue
		}
		results = append(results, timeline.Remembered{Key: p.cmd.DedupeKey(), Result: *p.result})
	}
	// The commands are acked once their ids are remembered, but the next
	// batch need not wait for that. Should remembering fail, they stay
	// unacked and come back (as duplicates, answered with their seq) to be
	// remembered again. (msgs is the caller's buffer: keep a copy.)
	msgs = slices.Clone(msgs)
	go func() {
		remember := s.dedupe.Remember
		if s.opt.AtomicBatches {
			remember = s.dedupe.RememberBatch
		}
		if err := remember(ctx, results); err != nil {
			if ctx.Err() == nil {
				s.opt.Log.Warn("remember command ids; leaving the commands for redelivery", "err", err)
			}
			return
		}
		for _, m := range msgs {
			if err := m.Ack(); err != nil {
				s.opt.Log.Warn("ack command", "err", err)
			}
		}
	}()
	return nil
}
