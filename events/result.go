package events

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Results cross NATS once per command (the sequencer's answer to the
// process that waits for it), so they are written and read by hand in the
// plain case, like events and commands (fastjson.go); encoding/json stays
// the definition of the format and takes everything else.

// AppendJSON appends r encoded as json.Marshal encodes it.
func (r Result) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	start := len(b)
	field := func(name string) {
		if len(b) > start {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, '"', ':')
	}
	if r.Conv != "" {
		field("conv")
		b = AppendString(b, r.Conv)
	}
	if r.Seq != 0 {
		field("seq")
		b = strconv.AppendInt(b, r.Seq, 10)
	}
	if r.TS != 0 {
		field("ts")
		b = strconv.AppendInt(b, r.TS, 10)
	}
	if r.Code != "" {
		field("code")
		b = AppendString(b, r.Code)
	}
	if r.Message != "" {
		field("message")
		b = AppendString(b, r.Message)
	}
	return append(b, '}')
}

// AppendAnswers appends answers encoded as json.Marshal encodes them.
func AppendAnswers(b []byte, answers []Answer) []byte {
	b = append(b, '[')
	for i, a := range answers {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"t":`...)
		b = AppendString(b, a.Token)
		b = append(b, `,"r":`...)
		b = a.Result.AppendJSON(b)
		b = append(b, '}')
	}
	return append(b, ']')
}

// AppendString appends s as a JSON string, as json.Marshal writes it: as it
// is when it needs no escape, else by encoding/json. For the hand-written
// encoders of other packages' frames too (the edge's acks).
func AppendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if escaped[s[i]] {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// escaped marks the bytes a string cannot be copied with: what encoding/json
// escapes (control characters, ", \, and <, > and & for HTML) and every
// byte of a multi-byte character (it escapes U+2028 and U+2029 and mends
// invalid UTF-8), which are left to it.
var escaped = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= 0x80
	}
	return t
}()

// DecodeResult parses a command's result.
func DecodeResult(b []byte) (Result, error) {
	var r Result
	if fastResult(b, &r) {
		return r, nil
	}
	r = Result{}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("decode result: %w", err)
	}
	return r, nil
}

// DecodeAnswers parses a batched answer.
func DecodeAnswers(b []byte) ([]Answer, error) {
	if answers, ok := fastAnswers(b); ok {
		return answers, nil
	}
	var answers []Answer
	if err := json.Unmarshal(b, &answers); err != nil {
		return nil, fmt.Errorf("decode answers: %w", err)
	}
	return answers, nil
}

func fastResult(b []byte, r *Result) bool {
	return ScanFlat(b, func(key, v []byte) (ok bool) {
		switch string(key) {
		case "conv":
			r.Conv, ok = PlainString(v)
		case "seq":
			r.Seq, ok = PlainInt(v)
		case "ts":
			r.TS, ok = PlainInt(v)
		case "code":
			r.Code, ok = PlainString(v)
		case "message":
			r.Message, ok = PlainString(v)
		}
		return ok
	})
}

func fastAnswers(b []byte) ([]Answer, bool) {
	answers := make([]Answer, 0, 8)
	ok := scanArray(b, func(v []byte) bool {
		if v[0] != '{' {
			return false
		}
		var a Answer
		if !ScanFlat(v, func(key, v []byte) (ok bool) {
			switch string(key) {
			case "t":
				a.Token, ok = PlainString(v)
			case "r":
				ok = fastResult(v, &a.Result)
			}
			return ok
		}) {
			return false
		}
		answers = append(answers, a)
		return true
	})
	if !ok {
		return nil, false
	}
	return answers, true
}
