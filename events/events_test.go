package events

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestValidID(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"01J9ZK3", true},
		{"a_b-C", true},
		{strings.Repeat("x", 64), true},
		{strings.Repeat("x", 65), false},
		{"", false},
		{"a b", false},
		{"a.b", false},
		{"é", false},
	} {
		if got := ValidID(tc.id); got != tc.want {
			t.Errorf("ValidID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

func TestPartitionStable(t *testing.T) {
	for _, conv := range []string{"a", "01JABC", "zzz"} {
		p := Partition(conv, 16)
		if p < 0 || p >= 16 || p != Partition(conv, 16) {
			t.Fatalf("Partition(%q) = %d", conv, p)
		}
	}
}

func TestEventJSON(t *testing.T) {
	e := Event{Conv: "c1", Seq: 7, Kind: KindMessage, ID: "x", From: "u1", TS: 5, Body: json.RawMessage(`{"text":"hi"}`)}
	got := string(e.Encode())
	want := `{"conv":"c1","seq":7,"kind":"message","id":"x","from":"u1","ts":5,"body":{"text":"hi"}}`
	if got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	back, err := DecodeEvent([]byte(got))
	if err != nil || back.Seq != 7 || string(back.Body) != `{"text":"hi"}` {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	if _, err := DecodeEvent([]byte("{")); err == nil {
		t.Fatal("want error for bad JSON")
	}
}
