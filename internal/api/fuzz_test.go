package api

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/seqchat/seqchat/events"
)

// fuzzBody runs one REST body through its decoder and validation: never a
// panic, and every refusal is the client's fault (bad_request, too_large).
func fuzzBody[T any](f *testing.F, seeds []string, validate func(*T) error, accepted func(t *testing.T, req *T)) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req T
		err := decodeBytes(b, &req)
		if err == nil && validate != nil {
			err = validate(&req)
		}
		if err != nil {
			if c := events.CodeOf(err); c != events.CodeBadRequest && c != events.CodeTooLarge {
				t.Fatalf("refused with %s: %v", c, err)
			}
			for _, w := range []string{"Go struct", "Go value", "unmarshal", "of type", "json:"} {
				if msg := events.MessageOf(err); strings.Contains(msg, w) {
					t.Fatalf("message %q says %q", msg, w)
				}
			}
			return
		}
		if !utf8.Valid(b) {
			t.Fatalf("accepted invalid UTF-8: %q", b)
		}
		if accepted != nil {
			accepted(t, &req)
		}
	})
}

var commonSeeds = []string{``, `[]`, `"x"`, `{`, `{"a":1e400}`, "{\"x\":\"\xff\"}", `[[[[[[[[]]]]]]]]`}

func FuzzRegisterBody(f *testing.F) {
	fuzzBody(f, append(commonSeeds, `{"username":"alice","password":"password1"}`, `{"username":"a';--","password":"x"}`),
		(*registerRequest).validate, func(t *testing.T, r *registerRequest) {
			if !usernameRE.MatchString(r.Username) || len(r.Password) > 72 {
				t.Fatalf("accepted %+v", r)
			}
		})
}

func FuzzLoginBody(f *testing.F) {
	fuzzBody[loginRequest](f, append(commonSeeds, `{"username":"alice","password":"password1","device":"phone"}`), nil, nil)
}

func FuzzCreateConversationBody(f *testing.F) {
	fuzzBody[createRequest](f, append(commonSeeds, `{"kind":"direct","members":["u2"]}`, `{"kind":"group","title":"t","members":["a","b"]}`), nil, nil)
}

func FuzzAddMemberBody(f *testing.F) {
	fuzzBody[addMemberRequest](f, append(commonSeeds, `{"user_id":"u2"}`), nil, nil)
}

func FuzzSendBody(f *testing.F) {
	fuzzBody(f, append(commonSeeds, `{"id":"01J","body":{"text":"hi"}}`, `{"id":"x","body":null}`, `{"id":"x","body":  [1, 2 ]}`),
		(*sendRequest).validate, func(t *testing.T, r *sendRequest) {
			if !events.ValidID(r.ID) || !json.Valid(r.Body) || len(r.Body) > events.MaxBodySize {
				t.Fatalf("accepted %+v", r)
			}
		})
}

func FuzzReadBody(f *testing.F) {
	fuzzBody(f, append(commonSeeds, `{"seq":5}`, `{"seq":-1}`, `{"seq":9223372036854775807}`),
		(*readRequest).validate, func(t *testing.T, r *readRequest) {
			if r.Seq == nil || *r.Seq < 0 {
				t.Fatalf("accepted %+v", r)
			}
		})
}

func FuzzRecallBody(f *testing.F) {
	fuzzBody(f, append(commonSeeds, `{"id":"r1","target":3}`, `{"id":"r1","target":0}`),
		(*recallRequest).validate, func(t *testing.T, r *recallRequest) {
			if !events.ValidID(r.ID) || r.Target < 1 {
				t.Fatalf("accepted %+v", r)
			}
		})
}
