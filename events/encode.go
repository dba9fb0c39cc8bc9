package events

import (
	"encoding/json"
	"slices"
	"strconv"
)

// Every event is encoded once when it is appended and again for every
// replay and history page, and every command once by the process that
// submits it, so they are written by hand like results (result.go);
// json.Marshal stays the definition of the format, and whatever the hand
// writing cannot vouch for (a string or body that needs escaping, a body
// that is not compact JSON) goes to it.

// AppendJSON appends e encoded as json.Marshal encodes it.
func (e *Event) AppendJSON(b []byte) []byte {
	if !plainBody(e.Body) {
		return appendMarshal(b, e)
	}
	b = append(b, `{"conv":`...)
	b = AppendString(b, e.Conv)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, e.Seq, 10)
	b = append(b, `,"kind":`...)
	b = AppendString(b, string(e.Kind))
	b = append(b, `,"id":`...)
	b = AppendString(b, e.ID)
	b = append(b, `,"from":`...)
	b = AppendString(b, e.From)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, e.TS, 10)
	b = appendBodyTargetUser(b, e.Body, e.Target, e.User)
	if e.Recalled {
		b = append(b, `,"recalled":true`...)
	}
	b = appendRich(b, e.ReplyTo, e.Mentions, e.Emoji, e.On)
	if e.Edited {
		b = append(b, `,"edited":true`...)
	}
	if e.EditedSeq != 0 {
		b = append(b, `,"edited_seq":`...)
		b = strconv.AppendInt(b, e.EditedSeq, 10)
	}
	if len(e.Reactions) > 0 {
		b = append(b, `,"reactions":{`...)
		keys := make([]string, 0, len(e.Reactions))
		for k := range e.Reactions {
			keys = append(keys, k)
		}
		slices.Sort(keys) // json.Marshal writes a map's keys sorted
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendString(b, k)
			b = append(b, ':')
			b = strconv.AppendInt(b, e.Reactions[k], 10)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// AppendJSON appends c encoded as json.Marshal encodes it.
func (c *Command) AppendJSON(b []byte) []byte {
	if !plainBody(c.Body) {
		return appendMarshal(b, c)
	}
	b = append(b, `{"op":`...)
	b = AppendString(b, string(c.Op))
	b = append(b, `,"id":`...)
	b = AppendString(b, c.ID)
	b = append(b, `,"conv":`...)
	b = AppendString(b, c.Conv)
	b = append(b, `,"from":`...)
	b = AppendString(b, c.From)
	b = appendBodyTargetUser(b, c.Body, c.Target, c.User)
	b = appendRich(b, c.ReplyTo, c.Mentions, c.Emoji, c.On)
	return append(b, '}')
}

// AppendBatch appends q, a batched CMDS message's data, encoded as
// json.Marshal encodes it.
func AppendBatch(b []byte, q []Queued) []byte {
	b = append(b, '[')
	for i := range q {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"r":`...)
		b = AppendString(b, q[i].Reply)
		b = append(b, `,"c":`...)
		b = q[i].Cmd.AppendJSON(b)
		if q[i].Origin != "" {
			b = append(b, `,"o":`...)
			b = AppendString(b, q[i].Origin)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendBodyTargetUser appends the body, target and user fields events and
// commands share, in their order, each left out when empty.
func appendBodyTargetUser(b, body []byte, target int64, user string) []byte {
	if len(body) > 0 {
		b = append(b, `,"body":`...)
		b = append(b, body...)
	}
	if target != 0 {
		b = append(b, `,"target":`...)
		b = strconv.AppendInt(b, target, 10)
	}
	if user != "" {
		b = append(b, `,"user":`...)
		b = AppendString(b, user)
	}
	return b
}

// appendRich appends the rich fields events and commands share, in their
// order, each left out when empty.
func appendRich(b []byte, replyTo int64, mentions []string, emoji string, on *bool) []byte {
	if replyTo != 0 {
		b = append(b, `,"reply_to":`...)
		b = strconv.AppendInt(b, replyTo, 10)
	}
	if len(mentions) > 0 {
		b = append(b, `,"mentions":[`...)
		for i, m := range mentions {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendString(b, m)
		}
		b = append(b, ']')
	}
	if emoji != "" {
		b = append(b, `,"emoji":`...)
		b = AppendString(b, emoji)
	}
	if on != nil {
		b = append(b, `,"on":`...)
		b = strconv.AppendBool(b, *on)
	}
	return b
}

// appendMarshal appends json.Marshal's encoding of v (nothing when it
// fails, as Encode returns nothing then).
func appendMarshal(b []byte, v any) []byte {
	m, err := json.Marshal(v)
	if err != nil {
		return b
	}
	return append(b, m...)
}

// plainBody reports whether body can be copied as it is where json.Marshal
// would write it: empty, or valid JSON that Marshal's compaction would not
// change (no whitespace outside strings, nothing it escapes for HTML).
// Bodies the system stores were compacted by json.Marshal when they were
// first encoded, so this holds for all but a client's raw input.
func plainBody(body []byte) bool {
	if len(body) == 0 {
		return true
	}
	inString := false
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case c == '<' || c == '>' || c == '&':
			return false
		case c == 0xE2 && i+2 < len(body) && body[i+1] == 0x80 && (body[i+2] == 0xA8 || body[i+2] == 0xA9):
			return false // U+2028 and U+2029, which Marshal escapes
		case inString:
			if c == '\\' {
				i++ // the escaped byte cannot end the string
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return false
		}
	}
	return !inString && json.Valid(body)
}
