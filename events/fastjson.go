package events

import (
	"encoding/json"
	"unicode/utf8"
)

// A fast path for decoding the flat JSON objects Event.Encode and the
// submitters write: every hop of a message decodes its event or command
// (three projectors, history reads, the sequencer), and encoding/json's
// reflection costs a dozen allocations each time. It only accepts the plain
// form (exact lower-case field names, strings without escapes, integers,
// bodies json.Valid accepts); anything else goes to encoding/json, which
// stays the definition of what these decode to. The edge decodes its
// client frames the same way (ScanFlat and the Plain* helpers).

// ScanFlat calls field for each member of the JSON object b with the
// member's raw value. It returns false, having maybe called field for some
// members, when b is not a plain object or field returns false.
func ScanFlat(b []byte, field func(key, val []byte) bool) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipSpace(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return false
		}
		k := i + 1
		for k < len(b) && b[k] != '"' && b[k] != '\\' {
			k++
		}
		if k >= len(b) || b[k] != '"' {
			return false
		}
		key := b[i+1 : k]
		i = skipSpace(b, k+1)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipSpace(b, i+1)
		end, ok := skipValue(b, i)
		if !ok || !field(key, b[i:end]) {
			return false
		}
		var last bool
		if i, last, ok = afterValue(b, end, '}'); !ok || last {
			return ok
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the JSON value starting at b[i]. It finds
// the extent only; callers check what they take (PlainString, PlainInt,
// json.Valid).
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, ok := skipString(b, i)
				if !ok {
					return 0, false
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1, true
				}
			}
			i++
		}
		return 0, false
	default:
		start := i
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
			i++
		}
		return i, i > start
	}
}

func skipString(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, true
		}
	}
	return 0, false
}

// PlainString decodes a JSON string without escapes, control characters
// or invalid UTF-8 (encoding/json would rewrite those).
func PlainString(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	s := v[1 : len(v)-1]
	ascii := true
	for _, c := range s {
		// Every byte is looked at: an escape after the first non-ASCII
		// character still needs encoding/json (the fuzzer found "é\u0026"
		// kept literally when the scan stopped there).
		if c < 0x20 || c == '\\' || c == '"' {
			return "", false
		}
		ascii = ascii && c < utf8.RuneSelf
	}
	if !ascii && !utf8.Valid(s) {
		return "", false
	}
	return string(s), true
}

// PlainInt decodes a JSON integer that fits an int64.
func PlainInt(v []byte) (int64, bool) {
	neg := len(v) > 0 && v[0] == '-'
	d := v
	if neg {
		d = v[1:]
	}
	if len(d) == 0 || len(d) > 18 || (d[0] == '0' && len(d) > 1) {
		return 0, false // 18 digits always fit; longer ones go the slow way
	}
	var n int64
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// PlainBody copies a raw body that is valid JSON and not null.
func PlainBody(v []byte) (json.RawMessage, bool) {
	if len(v) == 0 || v[0] == 'n' || !json.Valid(v) {
		return nil, false
	}
	return append(json.RawMessage(nil), v...), true
}

func fastEvent(b []byte, e *Event) bool {
	return ScanFlat(b, func(key, v []byte) (ok bool) {
		switch string(key) {
		case "conv":
			e.Conv, ok = PlainString(v)
		case "seq":
			e.Seq, ok = PlainInt(v)
		case "kind":
			switch string(v) { // the kinds need no copy of their own
			case `"` + string(KindMessage) + `"`:
				e.Kind, ok = KindMessage, true
			case `"` + string(KindRecall) + `"`:
				e.Kind, ok = KindRecall, true
			default:
				var k string
				k, ok = PlainString(v)
				e.Kind = Kind(k)
			}
		case "id":
			e.ID, ok = PlainString(v)
		case "from":
			e.From, ok = PlainString(v)
		case "ts":
			e.TS, ok = PlainInt(v)
		case "body":
			e.Body, ok = PlainBody(v)
		case "target":
			e.Target, ok = PlainInt(v)
		case "user":
			e.User, ok = PlainString(v)
		case "recalled":
			switch string(v) {
			case "true":
				e.Recalled, ok = true, true
			case "false":
				e.Recalled, ok = false, true
			}
		}
		return ok
	})
}

func fastCommand(b []byte, c *Command) bool {
	return ScanFlat(b, func(key, v []byte) (ok bool) {
		switch string(key) {
		case "op":
			if string(v) == `"`+string(OpSend)+`"` {
				c.Op, ok = OpSend, true
			} else {
				var op string
				op, ok = PlainString(v)
				c.Op = Op(op)
			}
		case "id":
			c.ID, ok = PlainString(v)
		case "conv":
			c.Conv, ok = PlainString(v)
		case "from":
			c.From, ok = PlainString(v)
		case "body":
			c.Body, ok = PlainBody(v)
		case "target":
			c.Target, ok = PlainInt(v)
		case "user":
			c.User, ok = PlainString(v)
		}
		return ok
	})
}

// scanArray calls elem for each element of the JSON array b with the
// element's raw value. It returns false, having maybe called elem for some
// elements, when b is not an array or elem returns false.
func scanArray(b []byte, elem func(v []byte) bool) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return skipSpace(b, i+1) == len(b)
	}
	for {
		end, ok := skipValue(b, i)
		if !ok || !elem(b[i:end]) {
			return false
		}
		var last bool
		if i, last, ok = afterValue(b, end, ']'); !ok || last {
			return ok
		}
	}
}

// afterValue reads what follows a member or element that ends at end, in
// an object or array that closer ends and that is the whole of b: a comma
// (next is where the next value starts), or the closer and nothing after it
// but space (last). ok is false for anything else.
func afterValue(b []byte, end int, closer byte) (next int, last, ok bool) {
	i := skipSpace(b, end)
	if i >= len(b) {
		return 0, false, false
	}
	switch b[i] {
	case ',':
		return skipSpace(b, i+1), false, true
	case closer:
		return 0, true, skipSpace(b, i+1) == len(b)
	}
	return 0, false, false
}

// fastBatch decodes a command batch (DecodeBatch) in the plain form the
// submitters write: a JSON array of {"r": reply, "c": command} objects.
func fastBatch(b []byte) ([]Queued, bool) {
	q := make([]Queued, 0, 16)
	ok := scanArray(b, func(v []byte) bool {
		var e Queued
		if !ScanFlat(v, func(key, v []byte) (ok bool) {
			switch string(key) {
			case "r":
				e.Reply, ok = PlainString(v)
			case "c":
				ok = fastCommand(v, &e.Cmd)
			case "o":
				e.Origin, ok = PlainString(v)
			}
			return ok
		}) {
			return false
		}
		q = append(q, e)
		return true
	})
	if !ok {
		return nil, false
	}
	return q, true
}
