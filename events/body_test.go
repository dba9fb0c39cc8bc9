package events

import (
	"encoding/json"
	"strings"
	"testing"
)

// CheckBody counts the limit on compact JSON and hands back the compact body.
func TestCheckBody(t *testing.T) {
	t.Parallel()
	spaced := json.RawMessage(`{"t": "` + strings.Repeat("x", MaxBodySize-8) + `"}` + strings.Repeat(" ", 100))
	for _, tc := range []struct {
		name string
		body string
		want string // compact body, or the refusal's code
	}{
		{"compacted", `{ "a" : [1, 2] }`, `{"a":[1,2]}`},
		{"spacing does not count", string(spaced), `{"t":"` + strings.Repeat("x", MaxBodySize-8) + `"}`},
		{"over the limit", `"` + strings.Repeat("x", MaxBodySize) + `"`, string(CodeTooLarge)},
		{"not JSON", `{`, string(CodeBadRequest)},
		{"missing", ``, string(CodeBadRequest)},
		{"null", `null`, string(CodeBadRequest)},
	} {
		got, err := CheckBody(json.RawMessage(tc.body))
		if err != nil {
			if string(CodeOf(err)) != tc.want {
				t.Errorf("%s: refused %v, want %s", tc.name, err, tc.want)
			}
			continue
		}
		if string(got) != tc.want {
			t.Errorf("%s: got %.40q, want %.40q", tc.name, got, tc.want)
		}
	}
}

// BodyText's hand-written plain case says what encoding/json says, for
// every valid body.
func FuzzBodyTextMatchesJSON(f *testing.F) {
	for _, s := range []string{
		`{"text":"hi"}`, `{"text":"hé"}`, `{"text":"a\"b"}`, `{"text":1}`, `{"text":null}`,
		`{"Text":"x"}`, `{"text":"a","text":"b"}`, `{"text":"a","TEXT":"b"}`, `{"x":{"text":"n"},"text":"t"}`,
		`{"text":["a"]}`, `{}`, `[]`, `"text"`, `{"te\u0078t":"y"}`, `{"text":"<&>"}`, ` {"text" : "sp" } `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !json.Valid(body) {
			return
		}
		var b struct {
			Text any `json:"text"`
		}
		want := ""
		if len(body) > 0 && body[0] == '{' && json.Unmarshal(body, &b) == nil {
			want, _ = b.Text.(string)
		}
		if got := BodyText(body); got != want {
			t.Fatalf("BodyText(%s) = %q, encoding/json says %q", body, got, want)
		}
	})
}
