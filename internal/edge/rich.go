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
		if f.ReplyTo < 0 {
			return events.BadReplyTo()
		}
		if len(f.Mentions) > events.MaxMentions {
			return events.TooManyMentions(events.MaxMentions)
		}
		for _, u := range f.Mentions {
			if !events.ValidToken(u) {
				return badRequest("mentions must be user ids")
			}
		}
	case "edit":
		if f.Target == nil || *f.Target < 1 {
			return badRequest("edit needs a target seq")
		}
		if len(f.Body) == 0 || string(f.Body) == "null" {
			return badRequest("edit needs a body")
		}
		if len(f.Body) > events.MaxBodySize {
			return events.BodyTooLarge(events.MaxBodySize)
		}
	case "react":
		if f.Target == nil || *f.Target < 1 {
			return badRequest("react needs a target seq")
		}
		if !events.ValidEmoji(f.Emoji) {
			return events.BadEmoji(events.MaxEmojiSize)
		}
		if f.On == nil {
			return badRequest("react needs on (true or false)")
		}
	}
	return nil
}
