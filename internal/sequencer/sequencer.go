// Package sequencer is the only writer of TIMELINE: it turns the commands
// waiting in CMDS into events and gives each event of a conversation the next
// gap-free seq.
//
// Conversations are spread over partitions (cmd.<partition>.<conv>); one
// sequencer at a time owns a partition through a lease in a JetStream KV
// bucket and processes its commands in order, so one sender's commands keep
// their order. Ownership is an optimisation, not the guarantee: every append
// carries Nats-Expected-Last-Subject-Sequence, so two sequencers racing on a
// conversation (a lease handover, a paused process) get a conflict, never a
// gap or a duplicate. Commands are appended in JetStream atomic batches, one
// round trip for a whole batch across many conversations, falling back to
// one-at-a-time appends when a batch fails.
package sequencer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/membership"
	"github.com/seqchat/seqchat/timeline"
)

// Members is what the sequencer needs to know of membership.
type Members interface {
	Get(ctx context.Context, conv string) (*membership.Conv, error)
	Invalidate(conv string)
}

// History looks up earlier events, for recall.
type History interface {
	Event(ctx context.Context, conv string, seq int64) (events.Event, error)
	RecallOf(ctx context.Context, conv string, target int64) (int64, error)
}

// Options configure a Sequencer.
type Options struct {
	InstanceID   string
	Partitions   int
	Batch        int
	LeaseTTL     time.Duration
	RecallWindow time.Duration
	// AtomicBatches appends every batch as one JetStream atomic batch: one
	// round trip and, on a cluster, one Raft proposal. Worth it where
	// JetStream stages batches cheaply (memory or replicated streams); a
	// single file-backed replica stages them in synced files, so there only
	// batches with a busy conversation go atomic.
	AtomicBatches bool
	// History answers recall's questions; without it recall is refused.
	History History
	Log     *slog.Logger
	Metrics prometheus.Registerer
	// Now gives the time events are stamped with; tests move it.
	Now func() time.Time
}

// Sequencer turns commands into events.
type Sequencer struct {
	opt     Options
	nc      *nats.Conn
	js      jetstream.JetStream
	tl      *timeline.Log
	members Members
	leases  jetstream.KeyValue
	dedupe  *timeline.Dedupe
	recent  *recent
	owning  *ownedLog

	appended  prometheus.Counter
	refused   *prometheus.CounterVec
	dups      prometheus.Counter
	conflicts prometheus.Counter
	batchSize prometheus.Histogram
	batchTime prometheus.Histogram
	owned     prometheus.Gauge
}

// New returns a sequencer; the streams must exist (timeline.Ensure).
func New(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, members Members, opt Options) (*Sequencer, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Batch <= 0 {
		opt.Batch = 500
	}
	if opt.RecallWindow <= 0 {
		opt.RecallWindow = 2 * time.Minute
	}
	if opt.LeaseTTL <= 0 {
		opt.LeaseTTL = 6 * time.Second
	}
	if opt.Metrics == nil {
		opt.Metrics = prometheus.NewRegistry()
	}
	leases, err := js.KeyValue(ctx, timeline.LeaseBucket)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", timeline.LeaseBucket, err)
	}
	f := promauto.With(opt.Metrics)
	return &Sequencer{
		opt: opt, nc: nc, js: js, tl: timeline.New(nc, js), members: members, leases: leases, dedupe: timeline.NewDedupe(nc, js),
		recent:    newRecent(200_000),
		owning:    &ownedLog{log: opt.Log, total: opt.Partitions, quiet: 300 * time.Millisecond, owned: map[int]bool{}},
		appended:  f.NewCounter(prometheus.CounterOpts{Name: "chat_sequencer_events_appended_total", Help: "Events appended to TIMELINE."}),
		refused:   f.NewCounterVec(prometheus.CounterOpts{Name: "chat_sequencer_commands_refused_total", Help: "Commands refused, by code."}, []string{"code"}),
		dups:      f.NewCounter(prometheus.CounterOpts{Name: "chat_sequencer_duplicates_total", Help: "Resent commands answered with their original seq."}),
		conflicts: f.NewCounter(prometheus.CounterOpts{Name: "chat_sequencer_conflicts_total", Help: "Appends that lost a race on a conversation and were retried."}),
		batchSize: f.NewHistogram(prometheus.HistogramOpts{Name: "chat_sequencer_batch_size", Help: "Commands per batch.", Buckets: prometheus.ExponentialBuckets(1, 2, 11)}),
		batchTime: f.NewHistogram(prometheus.HistogramOpts{Name: "chat_sequencer_batch_seconds", Help: "Time to append a batch.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		owned:     f.NewGauge(prometheus.GaugeOpts{Name: "chat_sequencer_partitions_owned", Help: "Partitions this sequencer owns."}),
	}, nil
}

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

// pending is one command on its way to the timeline.
type pending struct {
	cmd    events.Command
	reply  string
	origin string
	ev     events.Event
	result *events.Result
	// sameAs is an earlier command of the batch this one repeats the effect
	// of (a second recall of one target); it gets that one's result.
	sameAs *pending
}

// process sequences one batch of a partition's commands, in order.
func (s *Sequencer) process(ctx context.Context, state map[string]*timeline.Position, msgs []jetstream.Msg) error {
	start := time.Now()
	work := make([]*pending, 0, len(msgs))
	var unseen []string // dedupe keys not in memory: ask DEDUPE, all at once
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
			// Several commands of one connection, in the order it sent them.
			q, err := events.DecodeBatch(m.Data())
			if err != nil {
				s.opt.Log.Warn("dropping a malformed command batch", "err", err, "origin", origin)
				continue // no reply subject to refuse it on; acked below
			}
			for _, c := range q {
				take(&pending{reply: c.Reply, origin: origin}, c.Cmd)
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
	remembered, err := s.dedupe.Lookup(ctx, unseen)
	if err != nil {
		return fmt.Errorf("look up command ids: %w", err)
	}
	recalling := map[string]*pending{}
	for _, p := range work {
		if p.result != nil {
			continue
		}
		if r, ok := remembered[p.cmd.DedupeKey()]; ok {
			p.result = &r
			s.dups.Inc()
		} else if err := s.check(ctx, &p.cmd); err != nil {
			if events.CodeOf(err) == events.CodeUnavailable || events.CodeOf(err) == events.CodeInternal {
				return err // Postgres is away: retry the batch later, refuse nothing
			}
			p.result = refusal(err)
		} else if needsTarget(&p.cmd) {
			if err := s.checkTarget(ctx, &p.cmd, recalling); err != nil {
				if code := events.CodeOf(err); code == events.CodeUnavailable || code == events.CodeInternal {
					return err // as in check: retry the batch later
				}
				p.result = refusal(err)
			}
		} else if p.cmd.Op == events.OpRecall {
			// Who may recall is asked of every recall, before whether the
			// target is recalled already (by an earlier batch or this one):
			// a second recall is answered with the first one's seq only if
			// its sender could have recalled the message.
			key := recallKey(p.cmd.Conv, p.cmd.Target)
			if res, err := s.checkRecall(ctx, &p.cmd); err != nil {
				p.result = refusal(err)
			} else if res != nil {
				p.result = res
			} else if first, ok := recalling[key]; ok {
				p.sameAs, p.result = first, &events.Result{}
			} else {
				recalling[key] = p
			}
		}
		if p.result != nil && p.result.Code != "" {
			s.refused.WithLabelValues(p.result.Code).Inc()
		}
	}
	if err := s.append(ctx, state, work); err != nil {
		return err
	}
	// Answer at once; remembering the ids in DEDUPE can follow.
	for _, p := range work {
		if p.sameAs != nil {
			p.result = p.sameAs.result
		}
	}
	s.answer(work)
	var futures []jetstream.PubAckFuture
	for _, p := range work {
		if p.ev.Seq == 0 || p.result == nil || p.result.Code != "" {
			continue
		}
		f, err := s.dedupe.Remember(p.cmd.DedupeKey(), *p.result)
		if err != nil {
			return err
		}
		futures = append(futures, f)
	}
	// The commands are acked once their ids are remembered, but the next
	// batch need not wait for that. Should remembering fail, they stay
	// unacked and come back (as duplicates, answered with their seq) to be
	// remembered again. (msgs is the caller's buffer: keep a copy.)
	msgs = slices.Clone(msgs)
	go func() {
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				s.opt.Log.Warn("remember command ids; leaving the commands for redelivery", "err", err)
				return
			case <-ctx.Done():
				return
			}
		}
		for _, m := range msgs {
			if err := m.Ack(); err != nil {
				s.opt.Log.Warn("ack command", "err", err)
			}
		}
	}()
	s.batchSize.Observe(float64(len(work)))
	s.batchTime.Observe(time.Since(start).Seconds())
	return nil
}

func refusal(err error) *events.Result {
	return &events.Result{Code: string(events.CodeOf(err)), Message: events.MessageOf(err)}
}

// check refuses commands the protocol does not allow.
func (s *Sequencer) check(ctx context.Context, c *events.Command) error {
	if !events.ValidID(c.ID) || !events.ValidToken(c.Conv) || !events.ValidToken(c.From) {
		return events.Errorf(events.CodeBadRequest, "command needs a valid id, conv and sender")
	}
	cv, err := s.members.Get(ctx, c.Conv)
	if err != nil {
		return err
	}
	switch c.Op {
	case events.OpSend:
		if len(c.Body) > events.MaxBodySize {
			return events.BodyTooLarge(events.MaxBodySize)
		}
		if len(c.Body) == 0 || !json.Valid(c.Body) {
			return events.BodyNotJSON()
		}
		if cv.Members[c.From] == "" {
			return events.NotMember(c.Conv)
		}
		return checkRich(c, cv)
	case events.OpEdit, events.OpReact:
		if cv.Members[c.From] == "" {
			return events.NotMember(c.Conv)
		}
		return checkRich(c, cv)
	case events.OpRecall:
		if cv.Members[c.From] == "" {
			return events.NotMember(c.Conv)
		}
		if c.Target < 1 {
			return events.Errorf(events.CodeBadRequest, "recall needs a target seq")
		}
	case events.OpJoin, events.OpLeave:
		// Only the api submits these, after changing membership in Postgres.
		if !events.ValidToken(c.User) {
			return events.Errorf(events.CodeBadRequest, "membership command needs a user")
		}
	default:
		return events.Errorf(events.CodeBadRequest, "unknown command %q", c.Op)
	}
	return nil
}

func recallKey(conv string, target int64) string { return fmt.Sprintf("recall:%s:%d", conv, target) }

// checkRecall decides a recall: the refusal when its sender may not recall
// the target, else the existing recall's result when the target was
// recalled already (recalling twice appends nothing), else nil: the recall
// may be appended. Permission comes first so that an already recalled
// message does not answer anyone's recall with an ack.
func (s *Sequencer) checkRecall(ctx context.Context, c *events.Command) (*events.Result, error) {
	if s.opt.History == nil {
		return nil, events.Errorf(events.CodeForbidden, "recall is not available")
	}
	target, err := s.opt.History.Event(ctx, c.Conv, c.Target)
	if err != nil {
		return nil, err
	}
	if target.Kind != events.KindMessage {
		return nil, events.Errorf(events.CodeBadRequest, "seq %d is a %s, not a message", c.Target, target.Kind)
	}
	cv, err := s.members.Get(ctx, c.Conv)
	if err != nil {
		return nil, err
	}
	// A group's owner (or admin) may recall anything, at any time; a sender
	// their own message, within the window.
	privileged := cv.Members[c.From] == "owner" || cv.Members[c.From] == "admin"
	if !privileged && target.From != c.From {
		return nil, events.Errorf(events.CodeForbidden, "only the sender or the group's owner may recall")
	}
	if r, ok := s.recent.get(recallKey(c.Conv, c.Target)); ok {
		return &r, nil
	}
	if seq, err := s.opt.History.RecallOf(ctx, c.Conv, c.Target); err != nil {
		return nil, err
	} else if seq > 0 {
		prev, err := s.opt.History.Event(ctx, c.Conv, seq)
		if err != nil {
			return nil, err
		}
		return &events.Result{Conv: c.Conv, Seq: seq, TS: prev.TS}, nil
	}
	if !privileged {
		if age := s.opt.Now().Sub(time.UnixMilli(target.TS)); age > s.opt.RecallWindow {
			return nil, events.Errorf(events.CodeRecallExpired, "the recall window of %v has passed", s.opt.RecallWindow)
		}
	}
	return nil, nil
}

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

// append stores the accepted commands' events. Commands of one conversation
// go in order, one per round; the rounds pipeline every conversation of the
// batch at once, each append carrying the stream sequence its conversation
// must be at. With AtomicBatches the whole batch is first tried as one atomic
// append.
func (s *Sequencer) append(ctx context.Context, state map[string]*timeline.Position, work []*pending) error {
	ts := s.opt.Now().UnixMilli()
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
	if len(order) == 0 {
		return nil
	}
	deepest := 0
	for _, q := range queues {
		deepest = max(deepest, len(q))
	}
	// Rounds cost a round trip per command of the busiest conversation;
	// an atomic batch one for all (plus, on a single file replica, staging
	// it in a synced file): worth it once a conversation is busy.
	if s.opt.AtomicBatches || deepest > 2 {
		done, err := s.appendAtomic(ctx, state, work, ts)
		if done || err != nil {
			return err
		}
	}
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
			f, err := s.tl.AppendAsync(timeline.Entry{Event: &p.ev, MsgID: p.cmd.DedupeKey(), Origin: p.origin, Expect: &expect})
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
					return fmt.Errorf("resolve duplicate %s: %w", fl.p.cmd.DedupeKey(), err)
				}
				s.dups.Inc()
				fl.p.ev = orig.Event
				delete(state, conv) // the original need not be the last event
				s.settle(fl.p)
				queues[conv] = queues[conv][1:]
			default:
				fl.pos.Seq, fl.pos.StreamSeq = fl.p.ev.Seq, streamSeq
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

// appendAtomic tries the whole batch as one atomic append; done is false
// when it failed and the caller should append in rounds.
func (s *Sequencer) appendAtomic(ctx context.Context, state map[string]*timeline.Position, work []*pending, ts int64) (done bool, err error) {
	var entries []timeline.Entry
	var batch []*pending
	next := map[string]int64{}
	for _, p := range work {
		if p.result != nil {
			continue
		}
		pos, err := s.position(ctx, state, p.cmd.Conv)
		if err != nil {
			return false, err
		}
		p.ev = s.event(&p.cmd, ts)
		e := timeline.Entry{Event: &p.ev, MsgID: p.cmd.DedupeKey(), Origin: p.origin}
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
	first, err := s.tl.AppendBatch(ctx, entries)
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		s.opt.Log.Debug("atomic batch failed; appending in rounds", "err", err, "size", len(batch))
		for conv := range next {
			delete(state, conv)
		}
		return false, nil
	}
	for i, p := range batch {
		pos := state[p.cmd.Conv]
		pos.Seq, pos.StreamSeq = p.ev.Seq, first+uint64(i)
		s.settle(p)
	}
	s.appended.Add(float64(len(batch)))
	return true, nil
}

// settle records the result of an appended command.
func (s *Sequencer) settle(p *pending) {
	p.result = &events.Result{Conv: p.ev.Conv, Seq: p.ev.Seq, TS: p.ev.TS}
	s.recent.put(p.cmd.DedupeKey(), *p.result)
	if p.cmd.Op == events.OpRecall && p.ev.Kind == events.KindRecall {
		s.recent.put(recallKey(p.cmd.Conv, p.cmd.Target), *p.result)
	}
	if p.cmd.Op == events.OpJoin || p.cmd.Op == events.OpLeave {
		s.members.Invalidate(p.cmd.Conv)
	}
}

// answer sends each command's result to whoever waits for it, one message
// per waiting process rather than one per command.
func (s *Sequencer) answer(work []*pending) {
	byPrefix := map[string][]events.Answer{}
	var order []string
	for _, p := range work {
		if p.reply == "" || p.result == nil {
			continue
		}
		i := strings.LastIndexByte(p.reply, '.')
		if i < 0 {
			s.publishAnswer(p.reply, *p.result)
			continue
		}
		prefix := p.reply[:i]
		if _, ok := byPrefix[prefix]; !ok {
			order = append(order, prefix)
		}
		byPrefix[prefix] = append(byPrefix[prefix], events.Answer{Token: p.reply[i+1:], Result: *p.result})
	}
	for _, prefix := range order {
		answers := byPrefix[prefix]
		if len(answers) == 1 {
			s.publishAnswer(prefix+"."+answers[0].Token, answers[0].Result)
			continue
		}
		b, _ := json.Marshal(answers)
		if err := s.nc.Publish(prefix+"."+timeline.ReplyBatchToken, b); err != nil {
			s.opt.Log.Warn("answer commands", "err", err)
		}
	}
}

func (s *Sequencer) publishAnswer(subject string, r events.Result) {
	b, _ := json.Marshal(r)
	if err := s.nc.Publish(subject, b); err != nil {
		s.opt.Log.Warn("answer command", "err", err)
	}
}

// recent remembers the results of recent commands so that a quick resend is
// answered without touching the timeline. Two generations bound its size.
type recent struct {
	mu       sync.Mutex
	max      int
	cur, old map[string]events.Result
}

func newRecent(max int) *recent {
	return &recent{max: max, cur: map[string]events.Result{}, old: map[string]events.Result{}}
}

func (r *recent) get(key string) (events.Result, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.cur[key]; ok {
		return v, true
	}
	v, ok := r.old[key]
	return v, ok
}

func (r *recent) put(key string, v events.Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.cur) >= r.max/2 {
		r.old, r.cur = r.cur, make(map[string]events.Result, r.max/2)
	}
	r.cur[key] = v
}
