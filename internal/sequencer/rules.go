package sequencer

import (
	"context"

	"github.com/seqchat/seqchat/events"
)

// Rules of the richer messages (edit, reaction, reply_to, mentions): what a
// command says about itself and its conversation's members is checked in
// checkRich, with the other per-command checks; what needs the target event
// is checked in checkTarget, after the command is known not to be a resend.

// checkRich checks an edit, a react, or a send's reply_to and mentions
// against the command itself and cv's members.
func checkRich(c *events.Command, cv *events.Conv) error {
	switch c.Op {
	case events.OpSend:
		if err := events.CheckReferences(c.ReplyTo, c.Mentions); err != nil {
			return err
		}
		for _, u := range c.Mentions {
			if cv.Members[u] == "" {
				return events.MentionNotMember(u, c.Conv)
			}
		}
	case events.OpEdit:
		if c.Target < 1 {
			return events.Errorf(events.CodeBadRequest, "edit needs a target seq")
		}
		if _, err := events.CheckBody(c.Body); err != nil {
			return err
		}
	case events.OpReact:
		if c.Target < 1 {
			return events.Errorf(events.CodeBadRequest, "react needs a target seq")
		}
		if err := events.CheckEmoji(c.Emoji); err != nil {
			return err
		}
		if c.On == nil {
			return events.Errorf(events.CodeBadRequest, "react needs on (true or false)")
		}
	}
	return nil
}

// needsTarget reports whether c refers to an earlier event that checkTarget
// must look at.
func needsTarget(c *events.Command) bool {
	return c.Op == events.OpEdit || c.Op == events.OpReact || (c.Op == events.OpSend && c.ReplyTo > 0)
}

// checkTarget checks the event an edit, a react or a reply refers to: it
// must exist (not_found) and be a message (bad_request); an edit or a
// reaction must not target a recalled message (conflict), counting recalls
// accepted earlier in this batch (recalling, by recallKey); only the
// message's sender edits it (forbidden). A reply may quote a message that
// was recalled since: the quote shows the recall.
func (s *Sequencer) checkTarget(ctx context.Context, c *events.Command, recalling map[string]*pending) error {
	seq := c.Target
	if c.Op == events.OpSend {
		seq = c.ReplyTo
	}
	if s.opt.History == nil {
		return events.Errorf(events.CodeUnavailable, "history is not available here")
	}
	target, err := s.opt.History.Event(ctx, c.Conv, seq)
	if err != nil {
		return err
	}
	if target.Kind != events.KindMessage {
		return events.NotAMessage(seq, target.Kind)
	}
	if c.Op == events.OpSend {
		return nil
	}
	if c.Op == events.OpEdit && target.From != c.From {
		return events.Errorf(events.CodeForbidden, "only the message's sender may edit it")
	}
	if _, ok := recalling[recallKey(c.Conv, seq)]; ok || target.Recalled {
		return events.Errorf(events.CodeConflict, "message %d has been recalled", seq)
	}
	if _, ok := s.recent.get(recallKey(c.Conv, seq)); ok {
		return events.Errorf(events.CodeConflict, "message %d has been recalled", seq)
	}
	return nil
}
