package edge

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/seqchat/seqchat/events"
)

// The frame protocol: what the client sends and what the edge answers.

type ackFrame struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Conv string `json:"conv"`
	Seq  int64  `json:"seq,omitempty"`
	TS   int64  `json:"ts,omitempty"`
}

// appendJSON appends a encoded as json.Marshal encodes it: by hand, since
// every acked command sends one.
func (a ackFrame) appendJSON(b []byte) []byte {
	b = append(b, `{"type":`...)
	b = events.AppendString(b, a.Type)
	b = append(b, `,"id":`...)
	b = events.AppendString(b, a.ID)
	b = append(b, `,"conv":`...)
	b = events.AppendString(b, a.Conv)
	if a.Seq != 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendInt(b, a.Seq, 10)
	}
	if a.TS != 0 {
		b = append(b, `,"ts":`...)
		b = strconv.AppendInt(b, a.TS, 10)
	}
	return append(b, '}')
}

type errorFrame struct {
	Type    string `json:"type"`
	ID      string `json:"id,omitempty"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

type pongFrame struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
}

type syncedFrame struct {
	Type  string           `json:"type"`
	ID    string           `json:"id,omitempty"`
	Heads map[string]int64 `json:"heads"`
}

func encode(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// frame is any client frame.
type frame struct {
	Type    string           `json:"type"`
	ID      string           `json:"id"`
	Conv    string           `json:"conv"`
	Body    json.RawMessage  `json:"body"`
	Target  *int64           `json:"target"`
	Seq     *int64           `json:"seq"`
	Cursors map[string]int64 `json:"cursors"`
	// Richer messages (rich.go).
	ReplyTo  int64    `json:"reply_to"`
	Mentions []string `json:"mentions"`
	Emoji    string   `json:"emoji"`
	On       *bool    `json:"on"`
}

// fastFrame decodes the plain form of the frames clients send most (sends,
// edits, recalls, reads, pings) without reflection, the way events decodes
// its events (events.ScanFlat): exact lower-case field names, strings
// without escapes, integers, bodies json.Valid accepts. Anything else, and
// every mistake, it leaves to events.DecodeObject, which stays the
// definition of what a frame decodes to and how a bad one is refused.
func fastFrame(data []byte, f *frame) bool {
	if !utf8.Valid(data) {
		return false
	}
	return events.ScanFlat(data, func(key, v []byte) (ok bool) {
		switch string(key) {
		case "type":
			f.Type, ok = frameType(v)
		case "id":
			f.ID, ok = events.PlainString(v)
		case "conv":
			f.Conv, ok = events.PlainString(v)
		case "body":
			f.Body, ok = events.PlainBody(v)
		case "target":
			f.Target, ok = plainIntPtr(v)
		case "seq":
			f.Seq, ok = plainIntPtr(v)
		}
		return ok
	})
}

// frameType decodes a frame's type; the usual ones need no copy.
func frameType(v []byte) (string, bool) {
	switch string(v) {
	case `"send"`:
		return "send", true
	case `"ping"`:
		return "ping", true
	case `"read"`:
		return "read", true
	case `"edit"`:
		return "edit", true
	case `"recall"`:
		return "recall", true
	}
	return events.PlainString(v)
}

func plainIntPtr(v []byte) (*int64, bool) {
	n, ok := events.PlainInt(v)
	if !ok {
		return nil, false
	}
	return &n, true
}

func badRequest(format string, args ...any) error {
	return events.Errorf(events.CodeBadRequest, format, args...)
}

// decodeFrame parses and checks one client frame. On error, id is the
// frame's id when it has a valid one (the error frame names it).
func decodeFrame(data []byte) (f frame, id string, err error) {
	// A frame refused for a mistyped field still names its id when that
	// parsed: json.Unmarshal fills what it can before it gives up.
	if !fastFrame(data, &f) {
		f = frame{} // the fast path may have filled some before it gave up
		if err := events.DecodeObject("frame", data, &f); err != nil {
			id := f.ID
			if !events.ValidID(id) {
				id = ""
			}
			return f, id, err
		}
	}
	if f.ID != "" && !events.ValidID(f.ID) {
		return f, "", events.BadID()
	}
	if f.Type == "ping" {
		return f, f.ID, nil
	}
	if err := check(&f); err != nil {
		return f, f.ID, err
	}
	return f, f.ID, nil
}

// check validates a frame's fields for its type.
func check(f *frame) error {
	needConv := func() error {
		if f.ID == "" {
			return badRequest("%s needs an id", f.Type)
		}
		if f.Conv == "" {
			return badRequest("%s needs a conv", f.Type)
		}
		if !events.ValidToken(f.Conv) {
			return badRequest("conv %q is not a conversation id", f.Conv)
		}
		return nil
	}
	switch f.Type {
	case "send":
		if err := needConv(); err != nil {
			return err
		}
		return checkRich(f)
	case "edit", "react":
		if err := needConv(); err != nil {
			return err
		}
		return checkRich(f)
	case "recall":
		if err := needConv(); err != nil {
			return err
		}
		if f.Target == nil || *f.Target < 1 {
			return badRequest("recall needs a target seq")
		}
	case "read":
		if err := needConv(); err != nil {
			return err
		}
		if f.Seq == nil || *f.Seq < 0 {
			return events.NotNonNegative("seq")
		}
	case "sync":
		if len(f.Cursors) > maxSyncConvs {
			return badRequest("a sync names at most %d conversations", maxSyncConvs)
		}
		for conv, cur := range f.Cursors {
			if !events.ValidToken(conv) {
				return badRequest("conv %q is not a conversation id", conv)
			}
			if cur < 0 {
				return badRequest("cursor of %s must be a non-negative seq", conv)
			}
		}
	case "typing":
		return checkTyping(f)
	case "":
		return badRequest("frame needs a type")
	default:
		return badRequest("unknown frame type %q", f.Type)
	}
	return nil
}
