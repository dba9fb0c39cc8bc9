// Package events defines what flows through the system: the commands clients
// ask for, the sequenced events the timeline holds, and their JSON encoding.
package events

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
)

// Kind is what an event is, as docs/protocol.md names it. On the wire it is
// a plain JSON string.
type Kind string

// Event kinds.
const (
	KindMessage      Kind = "message"
	KindRecall       Kind = "recall"
	KindMemberJoined Kind = "member_joined"
	KindMemberLeft   Kind = "member_left"
	KindEdit         Kind = "edit"
	KindReaction     Kind = "reaction"
)

// MaxBodySize is the largest encoded message body the protocol allows.
const MaxBodySize = 16 << 10

// Event is one entry of a conversation's timeline. Its JSON form is the one
// clients see in history pages and on the socket.
type Event struct {
	Conv     string          `json:"conv"`
	Seq      int64           `json:"seq"`
	Kind     Kind            `json:"kind"`
	ID       string          `json:"id"`
	From     string          `json:"from"`
	TS       int64           `json:"ts"`
	Body     json.RawMessage `json:"body,omitempty"`
	Target   int64           `json:"target,omitempty"`
	User     string          `json:"user,omitempty"`
	Recalled bool            `json:"recalled,omitempty"`
	// Richer messages (see rich.go): a message's reply_to and mentions, a
	// reaction's emoji and on.
	ReplyTo  int64    `json:"reply_to,omitempty"`
	Mentions []string `json:"mentions,omitempty"`
	Emoji    string   `json:"emoji,omitempty"`
	On       *bool    `json:"on,omitempty"`
	// A message's current state, in history pages only.
	Edited    bool             `json:"edited,omitempty"`
	EditedSeq int64            `json:"edited_seq,omitempty"`
	Reactions map[string]int64 `json:"reactions,omitempty"`
}

// Op is what a command asks for. On the wire it is a plain JSON string.
type Op string

// Command operations.
const (
	OpSend   Op = "send"
	OpRecall Op = "recall"
	OpJoin   Op = "join"
	OpLeave  Op = "leave"
	OpEdit   Op = "edit"
	OpReact  Op = "react"
)

// Command is a request to append to a conversation, waiting in CMDS for the
// sequencer to give it a seq.
type Command struct {
	Op     Op              `json:"op"`
	ID     string          `json:"id"`
	Conv   string          `json:"conv"`
	From   string          `json:"from"`
	Body   json.RawMessage `json:"body,omitempty"`
	Target int64           `json:"target,omitempty"`
	User   string          `json:"user,omitempty"`
	// Richer messages: a send's reply_to and mentions, a react's emoji and on.
	ReplyTo  int64    `json:"reply_to,omitempty"`
	Mentions []string `json:"mentions,omitempty"`
	Emoji    string   `json:"emoji,omitempty"`
	On       *bool    `json:"on,omitempty"`
}

// DedupeKey identifies a command across resends: ids are scoped to the sender.
func (c *Command) DedupeKey() string { return c.From + "." + c.ID }

// Result is the sequencer's answer to a command: the event's seq and ts, or
// an error code and message when it was refused.
type Result struct {
	Conv    string `json:"conv,omitempty"`
	Seq     int64  `json:"seq,omitempty"`
	TS      int64  `json:"ts,omitempty"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// Answer is one command's result inside a batched reply (on the subject
// timeline.ReplyBatchToken names).
type Answer struct {
	Token  string `json:"t"`
	Result Result `json:"r"`
}

// ValidID reports whether s is a valid client-chosen command id:
// 1–64 characters of [A-Za-z0-9_-].
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidToken reports whether s can stand as one token of a NATS subject (ids
// of users and conversations are ULIDs, but a client may send anything).
func ValidToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	return !strings.ContainsAny(s, ". *>\t\r\n")
}

// Partition maps a conversation to one of n partitions. Every process must use
// the same n: it decides which sequencer orders a conversation.
func Partition(conv string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(conv))
	return int(h.Sum32() % uint32(n))
}

// Queued is one command of a batched CMDS message, with the subject its
// answer goes to and, when it differs from the message's origin header, the
// connection it came from: one message may carry the commands of several
// connections of one process.
type Queued struct {
	Reply  string  `json:"r"`
	Cmd    Command `json:"c"`
	Origin string  `json:"o,omitempty"`
}

// Encode returns the event's JSON.
func (e *Event) Encode() []byte {
	b := e.AppendJSON(make([]byte, 0, 192+len(e.Body)))
	if len(b) == 0 {
		return nil // a body that is not JSON, which json.Marshal refuses too
	}
	return b
}

// DecodeEvent parses an event.
func DecodeEvent(b []byte) (Event, error) {
	var e Event
	if fastEvent(b, &e) {
		return e, nil
	}
	e = Event{}
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("decode event: %w", err)
	}
	return e, nil
}

// DecodeBatch parses a batched CMDS message's data.
func DecodeBatch(b []byte) ([]Queued, error) {
	if q, ok := fastBatch(b); ok {
		return q, nil
	}
	var q []Queued
	if err := json.Unmarshal(b, &q); err != nil {
		return nil, fmt.Errorf("decode command batch: %w", err)
	}
	return q, nil
}

// DecodeCommand parses a command.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	if fastCommand(b, &c) {
		return c, nil
	}
	c = Command{}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("decode command: %w", err)
	}
	return c, nil
}
