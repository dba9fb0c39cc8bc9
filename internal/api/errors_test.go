package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/seqchat/seqchat/events"
)

// goWords are what encoding/json's own messages say; a client can do
// nothing with them and they show the server's internals.
var goWords = []string{"Go struct", "Go value", "unmarshal", "of type", "json:", "Request", "int64", "[]string"}

// errorMessage returns the message of a protocol error answer.
func errorMessage(t *testing.T, r resp) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return e.Error.Message
}

// Every REST body is decoded in one place, and a mistyped or malformed
// body is refused with bad_request and a message that names the field and
// what it must be, in the protocol's words.
func TestMalformedBodiesSayWhatIsWrong(t *testing.T) {
	e := start(t)
	alice := e.register(t, "alice")
	bob := e.register(t, "bob")
	conv := e.createConv(t, alice, "group", "g", bob.ID).ID
	p := "/v1/conversations/" + conv
	for _, tc := range []struct {
		name, method, path, token, body, want string
	}{
		{"register username number", "POST", "/v1/users", "", `{"username":123,"password":"password1"}`, "username must be a string, not a number"},
		{"register password object", "POST", "/v1/users", "", `{"username":"carol","password":{}}`, "password must be a string, not an object"},
		{"login device array", "POST", "/v1/sessions", "", `{"username":"alice","password":"password-alice","device":[1]}`, "device must be a string, not an array"},
		{"create members string", "POST", "/v1/conversations", alice.Token, `{"kind":"group","members":"bob"}`, "members must be an array of strings, not a string"},
		{"create members of numbers", "POST", "/v1/conversations", alice.Token, `{"kind":"group","members":[1,2]}`, "members must be an array of strings, not a number"},
		{"create kind bool", "POST", "/v1/conversations", alice.Token, `{"kind":true,"members":[]}`, "kind must be a string, not true or false"},
		{"add member number", "POST", p + "/members", alice.Token, `{"user_id":7}`, "user_id must be a string, not a number"},
		{"send id number", "POST", p + "/messages", alice.Token, `{"id":1,"body":{"text":"x"}}`, "id must be a string, not a number"},
		{"read seq string", "POST", p + "/read", alice.Token, `{"seq":"3"}`, "seq must be an integer, not a string"},
		{"read seq fraction", "POST", p + "/read", alice.Token, `{"seq":1.5}`, "seq must be an integer, not the number 1.5"},
		{"recall target string", "POST", p + "/recall", alice.Token, `{"id":"r1","target":"1"}`, "target must be an integer, not a string"},
		{"syntax", "POST", "/v1/users", "", `{"username" "x"}`, "body is not valid JSON at byte 13"},
		{"truncated", "POST", p + "/messages", alice.Token, `{"id":"x","body":`, "body is not valid JSON"},
		{"not an object", "POST", "/v1/sessions", "", `["alice"]`, "body must be a JSON object"},
		{"not UTF-8", "POST", "/v1/users", "", "{\"username\":\"\xff\xfe\",\"password\":\"password1\"}", "body must be UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, tc.method, tc.path, tc.token, tc.body)
			r.fails(t, http.StatusBadRequest, "bad_request")
			msg := errorMessage(t, r)
			if !strings.HasPrefix(msg, tc.want) {
				t.Errorf("message %q, want it to start with %q", msg, tc.want)
			}
			for _, w := range goWords {
				if strings.Contains(msg, w) {
					t.Errorf("message %q says %q", msg, w)
				}
			}
		})
	}
}

// Someone outside a conversation gets the one wording of that refusal from
// every call that touches it, whichever role refused.
func TestNotAMemberIsWordedOnce(t *testing.T) {
	e := start(t)
	alice := e.register(t, "alice")
	eve := e.register(t, "eve")
	conv := e.createConv(t, alice, "group", "g").ID
	e.send(t, alice, conv, "m1", map[string]string{"text": "hi"})
	want := events.MessageOf(events.NotMember(conv))
	p := "/v1/conversations/" + conv
	for _, c := range []struct{ method, path, body string }{
		{"GET", p, ""},
		{"GET", p + "/messages", ""},
		{"POST", p + "/messages", `{"id":"e1","body":{"text":"x"}}`},
		{"POST", p + "/read", `{"seq":1}`},
		{"GET", p + "/receipts", ""},
		{"POST", p + "/recall", `{"id":"e2","target":1}`},
	} {
		var body any
		if c.body != "" {
			body = c.body
		}
		r := e.do(t, c.method, c.path, eve.Token, body)
		r.fails(t, http.StatusForbidden, "forbidden")
		if got := errorMessage(t, r); got != want {
			t.Errorf("%s %s: %q, want %q", c.method, c.path, got, want)
		}
	}
}
