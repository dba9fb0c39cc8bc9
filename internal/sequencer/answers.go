package sequencer

import (
	"strings"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/timeline"
)

// Local is a command client in this process (the one-process mode): the
// answers it waits for are handed to it directly, neither encoded nor
// published, a publish and a delivery fewer for every command.
type Local interface {
	// Prefix is its answer subjects' prefix: "<prefix>.<token>".
	Prefix() string
	// Deliver takes answers by their subjects' last token.
	Deliver(answers []events.Answer)
}

// AnswerLocally hands the answers for c, a command client in this process,
// to it directly. Call it before Run.
func (s *Sequencer) AnswerLocally(c Local) { s.local = c }

// Taker is a projector in this process that takes its events from this
// sequencer rather than from TIMELINE (the one-process mode, where it
// appends every event of TIMELINE): fanout, and the history and unread
// projections' feeds (timeline.Feed). Each batch's new events are handed
// to every taker once they are stored and answered, with their stream
// sequences; the takers share the slice and must not change it.
type Taker interface {
	Offer(evs []timeline.Stored)
}

// OfferLocally hands t the events this sequencer appends, besides the
// takers offered them already. Only where nothing else appends to
// TIMELINE. Call it before Run.
func (s *Sequencer) OfferLocally(t Taker) { s.takers = append(s.takers, t) }

// offer hands the local takers the events of work, in order: those
// appended now and, for a resend the duplicate window answered, the
// original (the first copy may have been stored unconfirmed and never
// fanned out; an edge drops a seq it has, a projection a stream sequence
// it is past).
func (s *Sequencer) offer(work []*pending) {
	if len(s.takers) == 0 {
		return
	}
	evs := make([]timeline.Stored, 0, len(work))
	for _, p := range work {
		if p.ev.Seq == 0 || p.result == nil || p.result.Code != "" || p.result.Seq != p.ev.Seq {
			continue
		}
		evs = append(evs, timeline.Stored{Event: p.ev, StreamSeq: p.streamSeq, Origin: p.origin})
	}
	if len(evs) == 0 {
		return
	}
	for _, t := range s.takers {
		t.Offer(evs)
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
			s.send(p.reply, p.result.AppendJSON(nil))
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
		if s.local != nil && prefix == s.local.Prefix() {
			s.local.Deliver(answers)
			continue
		}
		if len(answers) == 1 {
			s.send(prefix+"."+answers[0].Token, answers[0].Result.AppendJSON(nil))
			continue
		}
		s.send(prefix+"."+timeline.ReplyBatchToken, events.AppendAnswers(nil, answers))
	}
}

// send publishes an answer on subject.
func (s *Sequencer) send(subject string, data []byte) {
	if err := s.nc.Publish(subject, data); err != nil {
		s.opt.Log.Warn("answer commands", "err", err)
	}
}
