package events

import (
	"bytes"
	"encoding/json"
	"unicode"
	"unicode/utf8"
)

// MaxMentions is how many users one message may mention.
const MaxMentions = 50

// MaxEmojiSize bounds a reaction's emoji, in bytes.
const MaxEmojiSize = 32

// ValidEmoji reports whether s can be a reaction: 1–32 bytes of printable
// UTF-8 text (no control characters, which no emoji needs).
func ValidEmoji(s string) bool {
	if len(s) == 0 || len(s) > MaxEmojiSize || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// BodyText returns a message body's "text" field, or "" when it has none:
// what search indexes. body is an event's, valid JSON (bodies are checked
// before they are sequenced).
func BodyText(body json.RawMessage) string {
	if len(body) == 0 || body[0] != '{' {
		return ""
	}
	// The plain case by hand (every stored message goes through here):
	// a flat object whose keys need no escape and whose "text", if it is
	// a string, has none either. encoding/json takes the rest, and a key
	// only it would match ("Text": it matches field names regardless of
	// case), and stays the definition (FuzzBodyTextMatchesJSON).
	var text string
	plain := ScanFlat(body, func(key, val []byte) bool {
		if string(key) != "text" {
			return !bytes.EqualFold(key, []byte("text"))
		}
		text = ""
		if len(val) > 0 && val[0] == '"' {
			s, ok := PlainString(val)
			text = s
			return ok
		}
		return true // not a string: no text
	})
	if plain {
		return text
	}
	var b struct {
		Text any `json:"text"`
	}
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	s, _ := b.Text.(string)
	return s
}

// Bool returns a pointer to v, for Event.On and Command.On.
func Bool(v bool) *bool { return &v }
