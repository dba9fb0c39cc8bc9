package edge

import (
	"context"
	"slices"
	"time"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/timeline"
)

// The publish queue: commands go to the sequencer one batch at a time, in
// frame order, and their answers come back as acks or errors.

// job is a command waiting to be published.
type job struct {
	cmd   events.Command
	start time.Time
}

// commandID is a command of one connection: its conversation and id. A
// struct rather than one string, so that no key is built per command or
// per delivered event.
type commandID struct{ conv, id string }

func (j job) id() commandID { return commandID{j.cmd.Conv, j.cmd.ID} }

// submit queues cmd for publishing. Commands are published one at a time in
// frame order, so one connection's messages keep their order in the
// timeline; their answers are awaited concurrently.
func (c *conn) submit(cmd events.Command) {
	key := commandID{cmd.Conv, cmd.ID}
	c.mu.Lock()
	// A command refused for load may be resent after later ones were
	// sent: admitted, those would overtake it. So after a refusal the
	// connection takes nothing but that command again. The block lasts at
	// most refusedBlock: it covers what the client sent before it saw the
	// refusal and a resend after the retry hint; a client that has not
	// resent by then has given up on that command, and blocking its
	// connection longer would only cost goodput.
	if c.refused != (commandID{}) && c.refused != key && time.Since(c.refusedAt) < refusedBlock {
		c.mu.Unlock()
		c.e.m.refusedBehind.Inc()
		c.fail(cmd.ID, events.Errorf(events.CodeUnavailable, "an earlier command of this connection was refused; resend it first, then this one, with the same ids"))
		return
	}
	c.refused = commandID{}
	if c.nInFlight >= maxInFlight {
		c.refused, c.refusedAt = key, time.Now()
		c.mu.Unlock()
		c.fail(cmd.ID, events.Errorf(events.CodeUnavailable, "too many commands in flight; retry later with the same id"))
		return
	}
	c.mu.Unlock()
	// Over the process's limit the command waits a little for a slot, and
	// the connection reads nothing meanwhile (only this reader submits, so
	// nothing overtakes it); after that wait it is refused rather than
	// queued behind a backlog the process would not get through in time.
	if !c.e.cmds.Admit(c.ctx) {
		c.mu.Lock()
		c.refused, c.refusedAt = key, time.Now()
		c.mu.Unlock()
		c.fail(cmd.ID, timeline.Busy())
		return
	}
	c.mu.Lock()
	c.nInFlight++
	if c.inFlight == nil {
		c.inFlight = map[commandID]int{} // made once the connection sends
	}
	c.inFlight[key]++
	c.queue = append(c.queue, job{cmd: cmd, start: time.Now()})
	start := !c.publishing
	c.publishing = true
	if c.queued == nil {
		c.queued = make(chan struct{}, 1)
	}
	queued := c.queued
	c.mu.Unlock()
	if start {
		go c.publishLoop()
		return
	}
	select {
	case queued <- struct{}{}: // wake it, should it be lingering
	default:
	}
}

// publishLinger is how long publishLoop waits for the next command once the
// queue is empty before it ends. A goroutine started anew for every command
// grows its stack anew each time (the publish path is deep): at 1,000
// commands/s that stack copying took 6% of chatd's CPU.
const publishLinger = time.Second

// publishLoop drains the publish queue and ends once it has stayed empty for
// publishLinger, so that an idle connection costs no goroutine. What queued
// up while a publish was under way goes as one CMDS message (per partition,
// in frame order): the queue then costs one store and one PubAck wait, not
// one per command.
func (c *conn) publishLoop() {
	var linger *time.Timer
	defer func() {
		if linger != nil {
			linger.Stop()
		}
	}()
	lingered := false
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			if lingered || c.ctx.Err() != nil {
				c.publishing = false
				c.mu.Unlock()
				return
			}
			queued := c.queued
			c.mu.Unlock()
			if linger == nil {
				linger = time.NewTimer(publishLinger)
			} else {
				linger.Reset(publishLinger)
			}
			select {
			case <-queued:
			case <-linger.C:
				lingered = true
			case <-c.ctx.Done():
				lingered = true
			}
			continue
		}
		lingered = false
		n, size := 1, len(c.queue[0].cmd.Body)
		for n < len(c.queue) && n < maxPublishBatch && c.e.cmds.SamePartition(c.queue[0].cmd.Conv, c.queue[n].cmd.Conv) {
			if size += len(c.queue[n].cmd.Body); size > timeline.MaxCommandBatchBytes/2 {
				break
			}
			n++
		}
		jobs := slices.Clone(c.queue[:n])
		clear(c.queue[:n])
		c.queue = c.queue[n:]
		c.mu.Unlock()

		cmds := make([]events.Command, len(jobs))
		for i := range jobs {
			cmds[i] = jobs[i].cmd
		}
		// The answers come to c.answered from whoever receives them: no
		// goroutine and channel per command waits for them.
		ctx, cancel := context.WithTimeout(c.ctx, c.e.opt.CommandTimeout)
		err := c.e.cmds.PublishBatchFunc(ctx, cmds, c.origin, func(i int, res events.Result, err error) {
			c.answered(jobs[i], res, err)
		})
		cancel()
		if err != nil {
			// Those jobs are answered with err already. The commands queued
			// behind them fail too: published now, they would overtake
			// them when the client resends them.
			// And so do the ones sent after them, until the first is resent.
			c.mu.Lock()
			rest := c.queue
			c.queue = nil
			c.refused, c.refusedAt = jobs[0].id(), time.Now()
			c.mu.Unlock()
			for _, j := range rest {
				c.answered(j, events.Result{}, err)
			}
		}
	}
}

// answered routes a command's result: the ack through the conversation's
// stream (it is the arrival of its seq), an error straight out.
func (c *conn) answered(j job, res events.Result, err error) {
	c.e.cmds.Release() // taken in submit
	c.mu.Lock()
	defer c.mu.Unlock()
	// Once the ack is recorded (an ack tells nothing of where a stream
	// without a cursor starts).
	defer c.releaseIfDue()
	key := j.id()
	c.nInFlight--
	if c.inFlight[key]--; c.inFlight[key] <= 0 {
		delete(c.inFlight, key)
	}
	if err != nil {
		// An event already held as this command's place gets delivered as
		// an event after all: no ack will take its place.
		if s := c.streams[j.cmd.Conv]; s != nil && c.inFlight[key] == 0 {
			s.disown(j.cmd.ID)
			c.flush(j.cmd.Conv, s)
		}
		c.fail(j.cmd.ID, err)
		return
	}
	c.e.m.ackTime.Observe(time.Since(j.start).Seconds())
	ack := ackFrame{Type: "ack", ID: j.cmd.ID, Conv: j.cmd.Conv, Seq: res.Seq, TS: res.TS}.appendJSON(make([]byte, 0, 64+len(j.cmd.ID)+len(j.cmd.Conv)))
	s := c.stream(j.cmd.Conv)
	if s.addAck(res.Seq, ack) {
		c.send(ack)
		return
	}
	c.flush(j.cmd.Conv, s)
}
