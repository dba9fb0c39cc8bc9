package events

import "time"

// The errors more than one role answers, each worded once here so that a
// client sees the same text whether the edge, the api or the sequencer
// refused it.

// NotMember is the refusal of anything done in conv by someone not in it.
func NotMember(conv string) error {
	return Errorf(CodeForbidden, "you are not a member of conversation %s", conv)
}

// UserNotMember refuses acting for a user (named by the caller, a server)
// who is not in conv.
func UserNotMember(user, conv string) error {
	return Errorf(CodeForbidden, "%s is not a member of conversation %s", user, conv)
}

// NoConversation is the answer about a conversation that does not exist.
func NoConversation(conv string) error {
	return Errorf(CodeNotFound, "conversation %s does not exist", conv)
}

// LoggedOut refuses a token whose session was logged out.
func LoggedOut() error { return Errorf(CodeUnauthorized, "session logged out") }

// BodyTooLarge refuses a message body over limit bytes.
func BodyTooLarge(limit int) error { return Errorf(CodeTooLarge, "body is over %d bytes", limit) }

// BodyNotJSON refuses a message body that is not one JSON value.
func BodyNotJSON() error { return Errorf(CodeBadRequest, "body must be JSON") }

// BadID refuses a command id outside the protocol's alphabet.
func BadID() error { return Errorf(CodeBadRequest, "id must be 1–64 of [A-Za-z0-9_-]") }

// NotNonNegative refuses a field or parameter that must be an integer ≥ 0.
func NotNonNegative(name string) error {
	return Errorf(CodeBadRequest, "%s must be a non-negative integer", name)
}

// BadReplyTo refuses a reply_to that is not a seq.
func BadReplyTo() error { return Errorf(CodeBadRequest, "reply_to must be a seq") }

// TooManyMentions refuses a message that mentions more than max users.
func TooManyMentions(max int) error {
	return Errorf(CodeBadRequest, "a message mentions at most %d users", max)
}

// MentionNotMember refuses mentioning a user who is not in conv: the
// message is malformed, not forbidden.
func MentionNotMember(user, conv string) error {
	return Errorf(CodeBadRequest, "mentioned user %s is not a member of conversation %s", user, conv)
}

// BadEmoji refuses a reaction's emoji outside 1–max bytes of text.
func BadEmoji(max int) error {
	return Errorf(CodeBadRequest, "emoji must be 1–%d bytes of text", max)
}

// NotAMessage refuses a target (of a recall, edit, reaction or reply) that is
// an event of another kind.
func NotAMessage(seq int64, kind Kind) error {
	return Errorf(CodeBadRequest, "seq %d is a %s, not a message", seq, kind)
}

// TooManyUserCommands refuses a command over the per-user limit the edges
// and the api share; retry is how long until the window ends.
func TooManyUserCommands(retry time.Duration) error {
	return RateLimited(retry, "too many commands from this user; retry in %ds with the same id", RetrySeconds(retry))
}

// StoreUnavailable wraps a failed store call: the client may retry. what says
// what was being done, in the client's words.
func StoreUnavailable(what string, err error) error {
	return WrapError(CodeUnavailable, err, "%s: store unavailable, try again", what)
}
