package events

import (
	"bytes"
	"encoding/json"
)

// The shape of a command's message fields, checked the same way by whoever
// takes the command in (an edge's frame, an api request, the sequencer's
// own check): these rules need nothing but the command. What needs the
// conversation (members, the target event) is the sequencer's.

// BodyMissing reports whether a send's or an edit's body is absent: no
// bytes, or JSON null. Each surface words that refusal in its own terms
// ("send needs a body", "body is required").
func BodyMissing(body json.RawMessage) bool {
	return len(body) == 0 || string(body) == "null"
}

// CheckBody checks a message body and returns it compacted: one JSON value,
// at most MaxBodySize bytes once compacted. The limit is on the body as
// events carry it, compact JSON, not the sender's spacing (docs/protocol.md:
// "at most 16 KiB compacted"), so every surface compacts before it counts
// and passes the compact body on. A missing body is not JSON here; callers
// that word it otherwise ask BodyMissing first.
func CheckBody(body json.RawMessage) (json.RawMessage, error) {
	if BodyMissing(body) {
		return nil, BodyNotJSON()
	}
	var compact bytes.Buffer
	compact.Grow(len(body))
	if err := json.Compact(&compact, body); err != nil {
		return nil, BodyNotJSON()
	}
	if compact.Len() > MaxBodySize {
		return nil, BodyTooLarge(MaxBodySize)
	}
	return compact.Bytes(), nil
}

// CheckReferences checks the shape of a send's reply_to and mentions; that
// the reply's target is a message and the mentioned users are members is
// the sequencer's to check.
func CheckReferences(replyTo int64, mentions []string) error {
	if replyTo < 0 {
		return BadReplyTo()
	}
	if len(mentions) > MaxMentions {
		return TooManyMentions(MaxMentions)
	}
	for _, u := range mentions {
		if !ValidToken(u) {
			return Errorf(CodeBadRequest, "mentions must be user ids")
		}
	}
	return nil
}

// CheckEmoji refuses a reaction's emoji that ValidEmoji does not accept.
func CheckEmoji(emoji string) error {
	if !ValidEmoji(emoji) {
		return BadEmoji(MaxEmojiSize)
	}
	return nil
}
