package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"
)

// DecodeObject parses data, one JSON object in UTF-8, into v (a pointer to
// a struct). what names the thing for the client ("body", "frame"). Every
// refusal is a bad_request whose message says in plain words what is wrong
// and where; encoding/json's own texts name Go types and struct fields,
// which mean nothing to a client and leak the server's internals.
func DecodeObject(what string, data []byte, v any) error {
	if b := bytes.TrimSpace(data); len(b) == 0 || b[0] != '{' {
		return Errorf(CodeBadRequest, "%s must be a JSON object", what)
	}
	// encoding/json would quietly turn invalid bytes into U+FFFD in
	// strings and keep them as they are in raw values.
	if !utf8.Valid(data) {
		return Errorf(CodeBadRequest, "%s must be UTF-8", what)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return WrapError(CodeBadRequest, err, "%s", jsonMessage(what, err, reflect.TypeOf(v)))
	}
	return nil
}

// jsonMessage words a json.Unmarshal error for a client.
func jsonMessage(what string, err error, target reflect.Type) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return fmt.Sprintf("%s must be a JSON object", what)
		}
		want := te.Type
		// The error names the innermost type (an element's); the field's
		// declared type says more ("an array of strings").
		t, shown := fieldType(target, field)
		if t != nil {
			want, field = t, shown
		}
		return fmt.Sprintf("%s must be %s, not %s", field, describe(want), article(te.Value))
	case errors.As(err, &se):
		return fmt.Sprintf("%s is not valid JSON at byte %d: %s", what, se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	default:
		// io.ErrUnexpectedEOF and the like; the text never names Go types.
		return fmt.Sprintf("%s is not valid JSON", what)
	}
}

// fieldType follows a dotted path of JSON names from t and returns the
// field's type (nil when lost) and the path as the client wrote it:
// encoding/json names embedded structs in the path, which the JSON has not.
func fieldType(t reflect.Type, path string) (reflect.Type, string) {
	var shown []string
	for _, name := range strings.Split(path, ".") {
		for t != nil && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t == nil || t.Kind() != reflect.Struct {
			return nil, path
		}
		if f, ok := t.FieldByName(name); ok && f.Anonymous && f.Tag.Get("json") == "" {
			t = f.Type
			continue
		}
		f, ok := jsonField(t, name)
		if !ok {
			return nil, path
		}
		shown = append(shown, name)
		t = f.Type
	}
	return t, strings.Join(shown, ".")
}

// jsonField finds the field encoding/json fills from the key name.
func jsonField(t reflect.Type, name string) (reflect.StructField, bool) {
	var fold reflect.StructField
	found := false
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		key := f.Name
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == "-" {
			continue
		}
		if tag != "" {
			key = tag
		} else if f.Anonymous && f.Type.Kind() == reflect.Struct {
			// An embedded struct's fields are the outer object's.
			if g, ok := jsonField(f.Type, name); ok {
				return g, true
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if key == name {
			return f, true
		}
		if !found && strings.EqualFold(key, name) {
			fold, found = f, true
		}
	}
	return fold, found
}

var rawMessage = reflect.TypeFor[json.RawMessage]()

// describe says what a value of t looks like in JSON.
func describe(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == rawMessage {
		return "a JSON value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array of " + plural(t.Elem())
	case reflect.Map:
		return "an object of " + plural(t.Elem())
	default:
		return "an object"
	}
}

// plural turns describe's "a string" into "strings".
func plural(t reflect.Type) string {
	d := describe(t)
	switch d {
	case "true or false":
		return "booleans"
	case "a JSON value":
		return "JSON values"
	}
	d = strings.TrimPrefix(strings.TrimPrefix(d, "an "), "a ")
	if first, rest, ok := strings.Cut(d, " of "); ok {
		return first + "s of " + rest
	}
	return d + "s"
}

// article turns encoding/json's name of the value it found ("number",
// "number 1.5", "string", "array", "object", "bool") into words.
func article(value string) string {
	kind, literal, _ := strings.Cut(value, " ")
	switch kind {
	case "number":
		if literal != "" && len(literal) <= 32 {
			return "the number " + literal
		}
		return "a number"
	case "bool":
		return "true or false"
	case "array", "object":
		return "an " + kind
	case "string":
		return "a string"
	case "null":
		return "null"
	default:
		return "something else"
	}
}
