package sequencer

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/timeline"
)

// event builds the event a command becomes.
func (s *Sequencer) event(c *events.Command, ts int64) events.Event {
	ev := events.Event{Conv: c.Conv, ID: c.ID, From: c.From, TS: ts}
	switch c.Op {
	case events.OpSend:
		ev.Kind, ev.Body, ev.ReplyTo, ev.Mentions = events.KindMessage, c.Body, c.ReplyTo, c.Mentions
	case events.OpEdit:
		ev.Kind, ev.Target, ev.Body = events.KindEdit, c.Target, c.Body
	case events.OpReact:
		ev.Kind, ev.Target, ev.Emoji, ev.On = events.KindReaction, c.Target, c.Emoji, c.On
	case events.OpRecall:
		ev.Kind, ev.Target = events.KindRecall, c.Target
	case events.OpJoin:
		ev.Kind, ev.User = events.KindMemberJoined, c.User
	case events.OpLeave:
		ev.Kind, ev.User = events.KindMemberLeft, c.User
	}
	return ev
}

// position returns conv's position, reading it from TIMELINE on a cold start.
func (s *Sequencer) position(ctx context.Context, state map[string]*timeline.Position, conv string) (*timeline.Position, error) {
	if pos, ok := state[conv]; ok {
		return pos, nil
	}
	pos, err := s.tl.Last(ctx, conv)
	if err != nil {
		return nil, err
	}
	if len(state) > 1_000_000 {
		clear(state)
	}
	state[conv] = &pos
	return &pos, nil
}

// append stores the accepted commands' events. The whole batch goes at
// once where that pays: pipelined (Options.Pipelined), or as one atomic
// append (atomic). What that leaves (a conflict, a duplicate, an atomic
// batch refused), or the whole batch otherwise, goes in rounds, where each
// append carries the stream sequence its conversation must be at.
func (s *Sequencer) append(ctx context.Context, state map[string]*timeline.Position, work []*pending) error {
	ts := s.opt.Now().UnixMilli()
	queues, order := unsettledQueues(work)
	if len(order) == 0 {
		return nil
	}
	var appendAll func(context.Context, map[string]*timeline.Position, []*pending, int64) error
	switch {
	case s.opt.Pipelined:
		appendAll = s.appendPipelined
	case s.atomic(queues):
		appendAll = s.appendAtomic
	}
	if appendAll != nil {
		if err := appendAll(ctx, state, work, ts); err != nil {
			return err
		}
		if queues, order = unsettledQueues(work); len(order) == 0 {
			return nil
		}
	}
	return s.appendRounds(ctx, state, queues, order, ts)
}

// unsettledQueues gathers the commands still to append by conversation,
// each queue in batch order, and the conversations in order of appearance.
func unsettledQueues(work []*pending) (map[string][]*pending, []string) {
	queues := map[string][]*pending{}
	var order []string
	for _, p := range work {
		if p.result != nil {
			continue
		}
		if _, ok := queues[p.cmd.Conv]; !ok {
			order = append(order, p.cmd.Conv)
		}
		queues[p.cmd.Conv] = append(queues[p.cmd.Conv], p)
	}
	return queues, order
}

// atomic reports whether a batch is worth one atomic append rather than
// rounds. Rounds cost a PubAck per command and a round trip per command of
// the busiest conversation. An atomic batch costs one round trip; where
// JetStream stages batches cheaply (AtomicBatches) nothing more, but on a
// single file-backed replica it stages each batch in a file store of its
// own, created, synced and removed per batch: a few milliseconds of CPU and
// a sync, which only a large batch or a deep queue repays. Measured
// (docs/benchmarks.md): direct conversations with 4 sends outstanding per
// socket make batches of about 48 with queues of up to 8, and went from
// 4,000-5,300 to 8,100-9,500 acked/s in rounds; batches of 500 still gain
// from going atomic.
func (s *Sequencer) atomic(queues map[string][]*pending) bool {
	n, deepest := 0, 0
	for _, q := range queues {
		n, deepest = n+len(q), max(deepest, len(q))
	}
	return s.opt.AtomicBatches || deepest > 2 && (n >= 256 || deepest > 16)
}

// unsettled builds the entries of the batch's commands still to append, in
// order: the first of each conversation carries the stream sequence its
// conversation must be at, the others follow it. It stops before a second
// copy of a command (a resend in the same batch), which the rounds answer.
func (s *Sequencer) unsettled(ctx context.Context, state map[string]*timeline.Position, work []*pending, ts int64) ([]timeline.Entry, []*pending, error) {
	var entries []timeline.Entry
	var batch []*pending
	next := map[string]int64{}
	keys := map[string]bool{}
	for _, p := range work {
		if p.result != nil {
			continue
		}
		key := p.key
		if keys[key] {
			break
		}
		keys[key] = true
		pos, err := s.position(ctx, state, p.cmd.Conv)
		if err != nil {
			return nil, nil, err
		}
		p.ev = s.event(&p.cmd, ts)
		e := timeline.Entry{Event: &p.ev, MsgID: key, Origin: p.origin}
		if n, ok := next[p.cmd.Conv]; ok {
			p.ev.Seq = n + 1
		} else {
			p.ev.Seq = pos.Seq + 1
			expect := pos.StreamSeq
			e.Expect = &expect
		}
		next[p.cmd.Conv] = p.ev.Seq
		entries = append(entries, e)
		batch = append(batch, p)
	}
	return entries, batch, nil
}

// appendPipelined appends the batch in one pipelined round trip and
// settles what was stored: always a prefix of the batch, each event at the
// stream sequence predicted for it. The conversations of the rest are read
// again by the rounds that take it.
func (s *Sequencer) appendPipelined(ctx context.Context, state map[string]*timeline.Position, work []*pending, ts int64) error {
	entries, batch, err := s.unsettled(ctx, state, work, ts)
	if err != nil || len(entries) == 0 {
		return err
	}
	stored, first, err := s.tl.AppendPipelined(ctx, entries)
	s.settleAppended(state, batch, stored, first)
	if stored < len(batch) {
		s.opt.Log.Debug("pipelined append stopped short; appending the rest in rounds", "err", err, "stored", stored, "size", len(batch))
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

// appendRounds appends queues (each conversation's commands, in order) in
// rounds: each round appends the next command of every conversation in
// order at once, each carrying the stream sequence its conversation must be
// at, and retries those that lost a race.
func (s *Sequencer) appendRounds(ctx context.Context, state map[string]*timeline.Position, queues map[string][]*pending, order []string, ts int64) error {
	conflicts := 0
	for len(order) > 0 {
		type flight struct {
			p   *pending
			pos *timeline.Position
			f   jetstream.PubAckFuture
		}
		flights := make([]flight, 0, len(order))
		for _, conv := range order {
			p := queues[conv][0]
			pos, err := s.position(ctx, state, conv)
			if err != nil {
				return err
			}
			p.ev = s.event(&p.cmd, ts)
			p.ev.Seq = pos.Seq + 1
			expect := pos.StreamSeq
			f, err := s.tl.AppendAsync(timeline.Entry{Event: &p.ev, MsgID: p.key, Origin: p.origin, Expect: &expect})
			if err != nil {
				return err
			}
			flights = append(flights, flight{p, pos, f})
		}
		var next []string
		for _, fl := range flights {
			conv := fl.p.cmd.Conv
			streamSeq, dup, err := timeline.Settle(ctx, fl.f)
			switch {
			case errors.Is(err, timeline.ErrConflict):
				// Another sequencer appended first: reload and retry this one.
				s.conflicts.Inc()
				delete(state, conv)
				if conflicts++; conflicts > 100*len(flights) {
					return fmt.Errorf("append to %s: still conflicting after %d attempts", conv, conflicts)
				}
			case err != nil:
				return err
			case dup:
				// Appended before (a redelivery, a resend within the window):
				// answer with the original.
				orig, err := s.tl.Get(ctx, streamSeq)
				if err != nil {
					return fmt.Errorf("resolve duplicate %s: %w", fl.p.key, err)
				}
				s.dups.Inc()
				fl.p.ev, fl.p.streamSeq = orig.Event, streamSeq
				delete(state, conv) // the original need not be the last event
				s.settle(fl.p)
				queues[conv] = queues[conv][1:]
			default:
				fl.pos.Seq, fl.pos.StreamSeq = fl.p.ev.Seq, streamSeq
				fl.p.streamSeq = streamSeq
				s.appended.Inc()
				s.settle(fl.p)
				queues[conv] = queues[conv][1:]
			}
			if len(queues[conv]) > 0 {
				next = append(next, conv)
			}
		}
		order = next
	}
	return nil
}

// appendAtomic tries the whole batch as one atomic append; when that
// fails, nothing is stored and the rounds take the batch.
func (s *Sequencer) appendAtomic(ctx context.Context, state map[string]*timeline.Position, work []*pending, ts int64) error {
	entries, batch, err := s.unsettled(ctx, state, work, ts)
	if err != nil || len(entries) == 0 {
		return err
	}
	first, err := s.tl.AppendBatch(ctx, entries)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.opt.Log.Debug("atomic batch failed; appending in rounds", "err", err, "size", len(batch))
		s.settleAppended(state, batch, 0, 0)
		return nil
	}
	s.settleAppended(state, batch, len(batch), first)
	return nil
}

// settleAppended settles the first n commands of batch, appended at
// consecutive stream sequences from first on, and forgets the positions of
// the conversations of the rest, which the rounds read again.
func (s *Sequencer) settleAppended(state map[string]*timeline.Position, batch []*pending, n int, first uint64) {
	for i, p := range batch[:n] {
		p.streamSeq = first + uint64(i)
		// nil: position cleared the state while the batch was built; the
		// conversation is read again when next needed.
		if pos := state[p.cmd.Conv]; pos != nil {
			pos.Seq, pos.StreamSeq = p.ev.Seq, p.streamSeq
		}
		s.settle(p)
	}
	for _, p := range batch[n:] {
		delete(state, p.cmd.Conv)
	}
	s.appended.Add(float64(n))
}

// settle records the result of an appended command.
func (s *Sequencer) settle(p *pending) {
	p.result = &events.Result{Conv: p.ev.Conv, Seq: p.ev.Seq, TS: p.ev.TS}
	s.recent.put(p.key, *p.result)
	if p.cmd.Op == events.OpRecall && p.ev.Kind == events.KindRecall {
		s.recent.put(recallKey(p.cmd.Conv, p.cmd.Target), *p.result)
	}
	if p.cmd.Op == events.OpJoin || p.cmd.Op == events.OpLeave {
		s.members.Invalidate(p.cmd.Conv)
	}
}
