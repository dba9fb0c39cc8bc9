package sequencer

import (
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/timeline"
)

// Local is a command client in this process (the one-process mode): the
// answers it waits for are handed to it directly, as the message it would
// have got on its answer subject, a publish and a delivery fewer for
// every command.
type Local interface {
	// Prefix is its answer subjects' prefix: "<prefix>.<token>".
	Prefix() string
	Answer(m *nats.Msg)
}

// AnswerLocally hands the answers for c, a command client in this process,
// to it directly. Call it before Run.
func (s *Sequencer) AnswerLocally(c Local) { s.local = c }

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
			s.send("", p.reply, p.result.AppendJSON(nil))
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
			s.send(prefix, prefix+"."+answers[0].Token, answers[0].Result.AppendJSON(nil))
			continue
		}
		s.send(prefix, prefix+"."+timeline.ReplyBatchToken, events.AppendAnswers(nil, answers))
	}
}

// send delivers an answer on subject: to the command client in this
// process when prefix is its, else through NATS.
func (s *Sequencer) send(prefix, subject string, data []byte) {
	if s.local != nil && prefix != "" && prefix == s.local.Prefix() {
		s.local.Answer(&nats.Msg{Subject: subject, Data: data})
		return
	}
	if err := s.nc.Publish(subject, data); err != nil {
		s.opt.Log.Warn("answer commands", "err", err)
	}
}
