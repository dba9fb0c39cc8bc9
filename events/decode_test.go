package events

import (
	"encoding/json"
	"strings"
	"testing"
)

type inner struct {
	Tags []string `json:"tags"`
}

type sample struct {
	inner
	Username string `json:"username"`
	Members  []string
	Seq      *int64           `json:"seq"`
	Cursors  map[string]int64 `json:"cursors"`
	Body     json.RawMessage  `json:"body"`
	On       bool             `json:"on"`
}

// goWords are what encoding/json's messages say and a client cannot use.
var goWords = []string{"Go struct", "Go value", "unmarshal", "of type", "json:", "sample", "int64", "[]string", "map["}

func TestDecodeObjectWords(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"username":123}`, "username must be a string, not a number"},
		{`{"Username":true}`, "username must be a string, not true or false"},
		{`{"members":"a"}`, "Members must be an array of strings, not a string"},
		{`{"members":[1]}`, "Members must be an array of strings, not a number"},
		{`{"seq":1.5}`, "seq must be an integer, not the number 1.5"},
		{`{"seq":"1"}`, "seq must be an integer, not a string"},
		{`{"cursors":{"a":"x"}}`, "cursors must be an object of integers, not a string"},
		{`{"cursors":[1]}`, "cursors must be an object of integers, not an array"},
		{`{"tags":"a"}`, "tags must be an array of strings, not a string"},
		{`{"on":{}}`, "on must be true or false, not an object"},
		{`{"username"}`, "body is not valid JSON at byte 12: invalid character '}' after object key"},
		{`{"username":"a"`, "body is not valid JSON"},
		{`[1]`, "body must be a JSON object"},
		{``, "body must be a JSON object"},
		{"{\"username\":\"\xff\"}", "body must be UTF-8"},
	} {
		var v sample
		err := DecodeObject("body", []byte(tc.in), &v)
		if CodeOf(err) != CodeBadRequest {
			t.Errorf("%s: code %s (%v), want bad_request", tc.in, CodeOf(err), err)
			continue
		}
		msg := MessageOf(err)
		if !strings.HasPrefix(msg, tc.want) {
			t.Errorf("%s: message %q, want %q", tc.in, msg, tc.want)
		}
		for _, w := range goWords {
			if strings.Contains(msg, w) {
				t.Errorf("%s: message %q names %q", tc.in, msg, w)
			}
		}
	}
	var v sample
	if err := DecodeObject("body", []byte(`{"username":"a","seq":3,"body":{"x":[1]}}`), &v); err != nil || v.Username != "a" || *v.Seq != 3 {
		t.Fatalf("valid object: %v %+v", err, v)
	}
}
