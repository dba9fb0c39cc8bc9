package edge

import (
	"github.com/seqchat/seqchat/events"
)

// checkRich checks the richer messages' fields of a send, edit or react
// frame (its id and conv are checked already). What needs the conversation
// (members, the target) is the sequencer's to check.
func checkRich(f *frame) error {
	switch f.Type {
	case "send":
		if err := checkBody(f); err != nil {
			return err
		}
		return events.CheckReferences(f.ReplyTo, f.Mentions)
	case "edit":
		if f.Target == nil || *f.Target < 1 {
			return badRequest("edit needs a target seq")
		}
		return checkBody(f)
	case "react":
		if f.Target == nil || *f.Target < 1 {
			return badRequest("react needs a target seq")
		}
		if err := events.CheckEmoji(f.Emoji); err != nil {
			return err
		}
		if f.On == nil {
			return badRequest("react needs on (true or false)")
		}
	}
	return nil
}

// checkBody checks a send's or an edit's body by events.CheckBody and keeps
// it compacted, as the api does: the limit counts compact JSON.
func checkBody(f *frame) error {
	if events.BodyMissing(f.Body) {
		return badRequest("%s needs a body", f.Type)
	}
	body, err := events.CheckBody(f.Body)
	if err != nil {
		return err
	}
	f.Body = body
	return nil
}
