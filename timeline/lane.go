package timeline

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/seqchat/seqchat/events"
)

// Group commit of commands to CMDS. Every publish waits for CMDS's ack
// before its caller publishes its next (store, in submit.go): that is what
// keeps one connection's commands in order. With many connections each
// sending now and then, that made one CMDS message, one PubAck and one
// delivery to the sequencer per command. So one partition's publishes go
// through a lane: while one is stored, the others that arrive wait, and go
// together as the next message once it is stored. Alone on its lane a
// command goes at once; under load, messages grow with the queue.
//
// Order holds: each caller's commands go in one message, in its order, and
// a caller publishes its next only once this returns.

// maxLaneCommands bounds the commands of one lane message. The sequencer
// takes a message's commands as one batch: at this size a batch is still
// a few milliseconds of its work.
const maxLaneCommands = 256

// defaultLaneWait bounds a lane message's store when none of its callers
// set a deadline (the api's requests do not).
const defaultLaneWait = 10 * time.Second

// laneDepth is how many messages of one lane may be stored at once. One
// shares the most: at 10,000 commands/s offered, 2 and 4 stored more
// messages (2.9 and 3.2 NATS messages published per ack against 2.7) and
// answered no faster, in one process or split (docs/benchmarks.md). A
// failing NATS node stalls a lane's waiters no longer than it stalled their
// connections' own publishes before: they share one NATS connection.
const laneDepth = 1

// lane is one partition's publish queue.
type lane struct {
	mu      sync.Mutex
	busy    int // messages being stored
	waiting []*group
}

// group is one caller's commands, in its order.
type group struct {
	q        []events.Queued
	origin   string
	size     int
	deadline time.Time
	turn     chan turn // buffered: whoever hands out a turn never waits
}

// turn is what a waiting caller is handed: the result of its store, or
// (lead) the messages' worth of groups, its own among them, to store now.
type turn struct {
	err  error
	lead []*group
}

// publish stores g's commands on CMDS, with those of whoever else waits on
// the lane, and returns once they are stored.
func (l *lane) publish(ctx context.Context, s *Submitter, subject string, g *group) error {
	if dl, ok := ctx.Deadline(); ok {
		g.deadline = dl
	} else {
		g.deadline = time.Now().Add(defaultLaneWait)
	}
	l.mu.Lock()
	if l.busy < laneDepth {
		l.busy++
		l.mu.Unlock()
		return l.lead(ctx, s, subject, []*group{g}, g)
	}
	g.turn = make(chan turn, 1)
	l.waiting = append(l.waiting, g)
	l.mu.Unlock()
	var t turn
	select {
	case t = <-g.turn:
	case <-ctx.Done():
		l.mu.Lock()
		if i := slices.Index(l.waiting, g); i >= 0 {
			l.waiting = slices.Delete(l.waiting, i, i+1)
			l.mu.Unlock()
			return events.WrapError(events.CodeUnavailable, ctx.Err(), "command queue unavailable")
		}
		l.mu.Unlock()
		// Taken already: its store is under way, or this caller is to
		// lead it; either ends by the message's deadline.
		t = <-g.turn
	}
	if t.lead == nil {
		return t.err
	}
	return l.lead(ctx, s, subject, t.lead, g)
}

// lead stores gs as one message, answers the other callers in it, hands
// the lane to the next waiter (or frees it), and returns own's result.
func (l *lane) lead(ctx context.Context, s *Submitter, subject string, gs []*group, own *group) error {
	// The message is the callers' together: the leader going away must not
	// fail the others, so it ends by the latest of their deadlines.
	dl := own.deadline
	for _, g := range gs {
		if g.deadline.After(dl) {
			dl = g.deadline
		}
	}
	sctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), dl)
	err := s.store(sctx, laneMessage(subject, gs))
	cancel()
	for _, g := range gs {
		if g != own {
			g.turn <- turn{err: err}
		}
	}
	l.mu.Lock()
	if len(l.waiting) == 0 {
		l.busy--
		l.mu.Unlock()
		return err
	}
	n, size := 1, l.waiting[0].size
	cmds := len(l.waiting[0].q)
	for n < len(l.waiting) {
		g := l.waiting[n]
		if cmds+len(g.q) > maxLaneCommands || size+g.size > MaxCommandBatchBytes {
			break
		}
		cmds += len(g.q)
		size += g.size
		n++
	}
	next := slices.Clone(l.waiting[:n])
	l.waiting = slices.Delete(l.waiting, 0, n)
	l.mu.Unlock()
	next[0].turn <- turn{lead: next}
	return err
}

// laneMessage builds the CMDS message of gs: one command alone as Publish
// always sent it, several as a batch.
func laneMessage(subject string, gs []*group) *nats.Msg {
	m := nats.NewMsg(subject)
	// The header names the origin when the commands share one; otherwise
	// each command names its own (none, for the api's).
	origin := gs[0].origin
	for _, g := range gs[1:] {
		if g.origin != origin {
			origin = ""
			break
		}
	}
	if origin != "" {
		m.Header.Set(HeaderOrigin, origin)
	}
	if len(gs) == 1 && len(gs[0].q) == 1 {
		q := gs[0].q[0]
		m.Data = q.Cmd.AppendJSON(make([]byte, 0, 160+len(q.Cmd.Body)))
		m.Header.Set(HeaderReply, q.Reply)
		return m
	}
	size, n := 0, 0
	for _, g := range gs {
		size, n = size+g.size, n+len(g.q)
	}
	all := make([]events.Queued, 0, n)
	for _, g := range gs {
		for _, q := range g.q {
			if g.origin != origin {
				q.Origin = g.origin
			}
			all = append(all, q)
		}
	}
	m.Data = events.AppendBatch(make([]byte, 0, size), all)
	m.Header.Set(HeaderBatch, "1")
	return m
}
