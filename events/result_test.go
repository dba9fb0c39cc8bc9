package events

import (
	"encoding/json"
	"reflect"
	"testing"
)

// The hand-written encoding of results and answers is json.Marshal's,
// byte for byte, and the fast decoding agrees with json.Unmarshal on
// whatever it accepts.
func FuzzResultMatchesJSON(f *testing.F) {
	f.Add("c1", int64(7), int64(1700000000000), "", "", "tok")
	f.Add("", int64(0), int64(0), "forbidden", `only "the" sender <may> recall & é`, "a.b")
	f.Add("x\u2028", int64(-3), int64(1), "rate_limited", "\x00\xff", "")
	f.Fuzz(func(t *testing.T, conv string, seq, ts int64, code, message, token string) {
		r := Result{Conv: conv, Seq: seq, TS: ts, Code: code, Message: message}
		want, _ := json.Marshal(r)
		if got := r.AppendJSON(nil); string(got) != string(want) {
			t.Fatalf("AppendJSON = %s, json.Marshal = %s", got, want)
		}
		answers := []Answer{{Token: token, Result: r}, {Token: "t2", Result: Result{Seq: 1}}}
		wantA, _ := json.Marshal(answers)
		if got := AppendAnswers(nil, answers); string(got) != string(wantA) {
			t.Fatalf("AppendAnswers = %s, json.Marshal = %s", got, wantA)
		}
		checkDecode(t, want, wantA)
	})
}

func FuzzDecodeResult(f *testing.F) {
	f.Add([]byte(`{"conv":"c","seq":1,"ts":2}`), []byte(`[{"t":"a","r":{"seq":3}}]`))
	f.Add([]byte(` { "code" : "x" , "message":"\u0041" } `), []byte(`[]`))
	f.Add([]byte(`{"seq":1e3}`), []byte(`[{"t":1}]`))
	f.Fuzz(func(t *testing.T, result, answers []byte) { checkDecode(t, result, answers) })
}

func checkDecode(t *testing.T, result, answers []byte) {
	t.Helper()
	var want Result
	wantErr := json.Unmarshal(result, &want)
	got, err := DecodeResult(result)
	if (err == nil) != (wantErr == nil) || (err == nil && got != want) {
		t.Fatalf("DecodeResult(%q) = %+v, %v; json.Unmarshal: %+v, %v", result, got, err, want, wantErr)
	}
	var wantA []Answer
	wantAErr := json.Unmarshal(answers, &wantA)
	gotA, err := DecodeAnswers(answers)
	if (err == nil) != (wantAErr == nil) {
		t.Fatalf("DecodeAnswers(%q) error %v; json.Unmarshal: %v", answers, err, wantAErr)
	}
	if err == nil && !(len(gotA) == 0 && len(wantA) == 0) && !reflect.DeepEqual(gotA, wantA) {
		t.Fatalf("DecodeAnswers(%q) = %+v; json.Unmarshal: %+v", answers, gotA, wantA)
	}
}
