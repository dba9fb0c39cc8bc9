package timeline

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/seqchat/seqchat/events"
)

// The command client. It submits chat commands to CMDS and waits for the
// sequencer's answer. The api and the edges share it.

// Submitter publishes commands and routes the sequencer's answers back.
type Submitter struct {
	nc         *nats.Conn
	js         jetstream.JetStream
	partitions int
	prefix     string
	sub        *nats.Subscription

	adm   admission // admit.go
	lanes []lane    // one per partition (lane.go)

	mu      sync.Mutex
	waiting map[string]*PendingCommand
}

// NewSubmitter subscribes to this process's answer subject.
func NewSubmitter(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, partitions int) (*Submitter, error) {
	s := &Submitter{nc: nc, js: js, partitions: partitions, prefix: "_CHAT." + nuid.Next(), waiting: map[string]*PendingCommand{}, lanes: make([]lane, max(partitions, 1))}
	var err error
	s.sub, err = nc.Subscribe(s.prefix+".*", s.deliver)
	if err != nil {
		return nil, fmt.Errorf("subscribe to answers: %w", err)
	}
	s.sub.SetPendingLimits(-1, -1)
	return s, nil
}

// Prefix is the prefix of this client's answer subjects.
func (s *Submitter) Prefix() string { return s.prefix }

// Close stops listening for answers.
func (s *Submitter) Close() { _ = s.sub.Unsubscribe() }

func (s *Submitter) deliver(m *nats.Msg) {
	token := m.Subject[len(s.prefix)+1:]
	if token == ReplyBatchToken {
		answers, err := events.DecodeAnswers(m.Data)
		if err != nil {
			return
		}
		for _, a := range answers {
			s.dispatch(a.Token, a.Result)
		}
		return
	}
	r, err := events.DecodeResult(m.Data)
	if err != nil {
		return
	}
	s.dispatch(token, r)
}

// Deliver takes answers as if they had come on this client's subjects:
// for a sequencer in the same process (sequencer.Local), which need not
// encode them.
func (s *Submitter) Deliver(answers []events.Answer) {
	for _, a := range answers {
		s.dispatch(a.Token, a.Result)
	}
}

func (s *Submitter) dispatch(token string, r events.Result) {
	if p := s.take(token); p != nil {
		p.resolve(r)
	}
}

// take removes a command's answer token: whoever takes it answers the
// command, once.
func (s *Submitter) take(token string) *PendingCommand {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.waiting[token]
	delete(s.waiting, token)
	return p
}

// Submit appends cmd and waits until it is sequenced (or refused). origin
// names the connection it came from, if any. A command id seen before, within
// the dedupe TTL, gets its original result: the sequencer appends nothing.
// Over the process's in-flight limit it waits for a slot for the admission
// wait, then answers Busy (admit.go).
func (s *Submitter) Submit(ctx context.Context, cmd events.Command, origin string) (events.Result, error) {
	if !s.Admit(ctx) {
		return events.Result{}, Busy()
	}
	defer s.Release()
	p, err := s.Publish(ctx, cmd, origin)
	if err != nil {
		return events.Result{}, err
	}
	return p.Wait(ctx)
}

// PendingCommand is a command published to CMDS whose answer has not been read yet.
// Its owner must call Wait once (Publish, PublishBatch); PublishBatchFunc's
// are answered through its callback instead.
type PendingCommand struct {
	s     *Submitter
	token string
	ch    chan events.Result // Wait's
	batch *answerBatch       // PublishBatchFunc's, with the command's index
	i     int
}

// answerBatch is what one PublishBatchFunc's commands share.
type answerBatch struct {
	answered func(i int, r events.Result, err error)
	left     atomic.Int32  // commands not answered yet
	wait     time.Duration // until the deadline
	timer    *time.Timer   // answers the rest when the deadline passes
}

// arm starts the deadline's timer. publish calls it once ps's tokens are
// registered and before they are stored: armed earlier, a deadline already
// (nearly) past could fire before there is anything to take, and the
// commands would then wait for their answers with no timer behind them.
// It runs under s.mu, which dispatch takes before resolve reads the timer.
func (b *answerBatch) arm(s *Submitter, ps []*PendingCommand) {
	b.timer = time.AfterFunc(b.wait, func() {
		for _, p := range ps {
			if s.take(p.token) != nil {
				b.answered(p.i, events.Result{}, errNotInTime())
			}
		}
	})
}

func (p *PendingCommand) resolve(r events.Result) {
	if p.batch == nil {
		p.ch <- r
		return
	}
	p.batch.answered(p.i, r, resultErr(r))
	if p.batch.left.Add(-1) == 0 {
		p.batch.timer.Stop()
	}
}

// resultErr is a refusal's error.
func resultErr(r events.Result) error {
	if r.Code != "" {
		return events.Errorf(events.ParseCode(r.Code), "%s", r.Message)
	}
	return nil
}

// errNotInTime answers a command whose answer did not come by its deadline.
func errNotInTime() error {
	return events.Errorf(events.CodeUnavailable, "not sequenced in time; resend with the same id")
}

// Publish appends cmd to CMDS and returns once it is stored there, without
// waiting for the sequencer.
// Commands published one after another from one goroutine reach the
// sequencer in that order, which is how an edge keeps one connection's
// messages in the order they were sent while many wait for their seq at once.
func (s *Submitter) Publish(ctx context.Context, cmd events.Command, origin string) (*PendingCommand, error) {
	ps, err := s.PublishBatch(ctx, []events.Command{cmd}, origin)
	if err != nil {
		return nil, err
	}
	return ps[0], nil
}

// MaxCommandBatchBytes bounds the data of one batched CMDS message, well below
// NATS's default 1 MiB payload limit.
const MaxCommandBatchBytes = 256 << 10

// PublishBatch appends cmds, all of one partition (SamePartition) and in
// the order given, to CMDS and returns once they are stored. They go in
// one message, with whatever other commands of the partition are waiting
// for theirs (lane.go): one store, delivery and ack for all of them. The
// sequencer takes them in that order.
func (s *Submitter) PublishBatch(ctx context.Context, cmds []events.Command, origin string) ([]*PendingCommand, error) {
	ps, err := s.pending(cmds, nil)
	if err != nil || len(ps) == 0 {
		return nil, err
	}
	for _, p := range ps {
		p.ch = make(chan events.Result, 1)
	}
	if err := s.publish(ctx, cmds, origin, ps); err != nil {
		for _, p := range ps {
			p.forget()
		}
		return nil, err
	}
	return ps, nil
}

// PublishBatchFunc is PublishBatch for a caller that does not wait for the
// answers: answered is called once for each command, with its index in
// cmds, when the sequencer answers it, when ctx's deadline passes first
// (unavailable), or, before this returns the error, when the commands could
// not be stored. It may be called before this returns, from other
// goroutines, and for several commands at once. A caller with many commands
// in flight is spared a goroutine and a channel per command.
func (s *Submitter) PublishBatchFunc(ctx context.Context, cmds []events.Command, origin string, answered func(i int, r events.Result, err error)) error {
	b := &answerBatch{answered: answered}
	ps, err := s.pending(cmds, b)
	if err != nil || len(ps) == 0 {
		return err
	}
	b.left.Store(int32(len(ps)))
	b.wait = defaultLaneWait
	if dl, ok := ctx.Deadline(); ok {
		b.wait = time.Until(dl)
	}
	if err := s.publish(ctx, cmds, origin, ps); err != nil {
		b.timer.Stop()
		for _, p := range ps {
			if s.take(p.token) != nil {
				answered(p.i, events.Result{}, err)
			}
		}
		return err
	}
	return nil
}

// pending makes the answer tokens of cmds, all of one partition (none for
// no commands: nothing to publish); b, if set, is where their answers go.
func (s *Submitter) pending(cmds []events.Command, b *answerBatch) ([]*PendingCommand, error) {
	if len(cmds) == 0 {
		return nil, nil
	}
	ps := make([]*PendingCommand, len(cmds))
	for i := range cmds {
		if !s.SamePartition(cmds[0].Conv, cmds[i].Conv) {
			return nil, fmt.Errorf("publish batch: %s and %s are in different partitions", cmds[0].Conv, cmds[i].Conv)
		}
		ps[i] = &PendingCommand{s: s, token: nuid.Next(), batch: b, i: i}
	}
	return ps, nil
}

// publish registers ps's tokens, arms their deadline if they share one
// (PublishBatchFunc), and stores cmds through their partition's lane. On
// failure the tokens stay registered: the caller drops them
// (PublishBatchFunc answers those no late answer took).
func (s *Submitter) publish(ctx context.Context, cmds []events.Command, origin string, ps []*PendingCommand) error {
	g := &group{q: make([]events.Queued, len(cmds)), origin: origin}
	s.mu.Lock()
	for i, p := range ps {
		s.waiting[p.token] = p
		g.q[i] = events.Queued{Reply: s.prefix + "." + p.token, Cmd: cmds[i]}
		g.size += 224 + len(cmds[i].Body)
	}
	if b := ps[0].batch; b != nil {
		b.arm(s, ps)
	}
	s.mu.Unlock()
	part := events.Partition(cmds[0].Conv, s.partitions)
	return s.lanes[part].publish(ctx, s, CmdSubject(s.partitions, cmds[0].Conv), g)
}

// SamePartition reports whether two conversations' commands may share a
// batch.
func (s *Submitter) SamePartition(a, b string) bool {
	return events.Partition(a, s.partitions) == events.Partition(b, s.partitions)
}

// store appends m to CMDS, retrying until ctx ends.
func (s *Submitter) store(ctx context.Context, m *nats.Msg) error {
	// No Nats-Msg-Id here: a resend must reach the sequencer, which answers
	// every copy with the original seq; CMDS dropping it would leave the
	// resender without an answer.
	//
	// Stored before the caller publishes its next command: one lost with a
	// failing NATS server must not let that connection's later commands
	// overtake it. So wait for CMDS's ack and retry until ctx ends; a retry
	// may store a command twice, and the sequencer answers the copy with the
	// same seq.
	for backoff := 20 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := s.js.PublishMsg(actx, m)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return events.WrapError(events.CodeUnavailable, err, "command queue unavailable")
		case <-time.After(backoff):
		}
	}
}

// Wait blocks until the sequencer answers or ctx ends.
func (p *PendingCommand) Wait(ctx context.Context) (events.Result, error) {
	defer p.forget()
	select {
	case r := <-p.ch:
		return r, resultErr(r)
	case <-ctx.Done():
		return events.Result{}, errNotInTime()
	}
}

func (p *PendingCommand) forget() {
	p.s.mu.Lock()
	delete(p.s.waiting, p.token)
	p.s.mu.Unlock()
}
