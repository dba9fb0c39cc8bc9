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
