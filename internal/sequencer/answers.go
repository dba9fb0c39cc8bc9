package sequencer

import (
	"strings"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/timeline"
)

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
		b := events.AppendAnswers(nil, answers)
		if err := s.nc.Publish(prefix+"."+timeline.ReplyBatchToken, b); err != nil {
			s.opt.Log.Warn("answer commands", "err", err)
		}
	}
}

func (s *Sequencer) publishAnswer(subject string, r events.Result) {
	b := r.AppendJSON(nil)
	if err := s.nc.Publish(subject, b); err != nil {
		s.opt.Log.Warn("answer command", "err", err)
	}
}
