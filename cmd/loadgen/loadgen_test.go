package main

import (
	"encoding/json"
	"os"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	s := h.snapshot()
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}} {
		got := quantile(s[:], c.q)
		// Buckets grow by 5 %: a quantile is within one bucket of the truth.
		if got < c.want*95/100 || got > c.want*105/100 {
			t.Errorf("q%.2f = %v, want about %v", c.q, got, c.want)
		}
	}
}

func TestProcStatReadsOwnCPU(t *testing.T) {
	p, ok := procStat(os.Getpid())
	if !ok || p.name == "" || p.ticks < 0 {
		t.Fatalf("procStat(self) = %+v, %v", p, ok)
	}
	if _, ok := procStat(-1); ok {
		t.Fatal("procStat(-1) succeeded")
	}
}

func TestParseList(t *testing.T) {
	got, err := parseList("1, 4,32", func(s string, _ int) (int, error) { return len(s), nil })
	if err != nil || len(got) != 3 {
		t.Fatalf("parseList = %v, %v", got, err)
	}
}

func TestQuickFrameAgreesWithJSON(t *testing.T) {
	for _, b := range []string{
		`{"type":"ack","id":"m1z","conv":"c1","seq":42,"ts":17}`,
		`{"type":"event","conv":"c1","seq":7,"id":"x","from":"u","ts":1,"kind":"message","body":{"text":"load","sent":123456789}}`,
		`{"type":"event","conv":"c1","seq":8,"kind":"message","body":{"text":"hi"}}`,
	} {
		var quick, slow frame
		if !quickFrame([]byte(b), &quick) {
			t.Fatalf("quickFrame(%s) gave up", b)
		}
		if err := json.Unmarshal([]byte(b), &slow); err != nil {
			t.Fatal(err)
		}
		if quick.Type != slow.Type || quick.ID != slow.ID && quick.Type == "ack" || quick.Seq != slow.Seq || quick.Body.Sent != slow.Body.Sent {
			t.Fatalf("%s: quick %+v, json %+v", b, quick, slow)
		}
	}
	var f frame
	if quickFrame([]byte(`{"type":"synced","id":"s","heads":{}}`), &f) {
		t.Fatal("quickFrame read a synced frame")
	}
}
