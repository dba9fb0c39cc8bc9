package sequencer

import (
	"context"
	"fmt"
	"time"

	"github.com/seqchat/seqchat/events"
)

// admit answers the resends DEDUPE remembers and decides every other
// command: refused (p.result set), the same as an earlier recall of the
// batch (p.sameAs), or to be appended (p.result nil). An error means
// Postgres or NATS is away: the batch is retried later.
func (s *Sequencer) admit(ctx context.Context, work []*pending, unseen []string) error {
	remembered, err := s.dedupe.Lookup(ctx, unseen)
	if err != nil {
		return fmt.Errorf("look up command ids: %w", err)
	}
	recalling := map[string]*pending{}
	for _, p := range work {
		if p.result != nil {
			continue
		}
		if r, ok := remembered[p.key]; ok {
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
		if _, err := events.CheckBody(c.Body); err != nil {
			return err
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
	privileged := events.Role(cv.Members[c.From]).Privileged()
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
