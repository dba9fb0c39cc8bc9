package edge_test

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/seqchat/seqchat/internal/config"
)

// With a process limit of two commands in flight and no admission wait, a
// burst of 200 gets fast unavailable for what is over the limit; what was admitted is acked, and
// always a prefix of what was sent (a refused command blocks its
// connection's later ones, so none overtakes it). Resending the refused
// ones in order gets them acked, each event once, and the timeline holds
// all 200 in the order sent.
func TestAdmissionControl(t *testing.T) {
	t.Parallel()
	s := startWith(t, func(c *config.Config) { c.CommandsInFlight = 2; c.AdmissionWait = 0 })
	a, b := s.user("alice"), s.user("bob")
	conv := s.direct(a, b)
	c := dial(t, s.main.Addr, a.token)
	c.sync(map[string]int64{conv: 0})

	const n = 200
	pending := make([]int, n)
	for i := range pending {
		pending[i] = i
	}
	refusals := 0
	for round := 0; len(pending) > 0; round++ {
		if round == n {
			t.Fatalf("%d commands still refused after %d rounds", len(pending), round)
		}
		for _, i := range pending {
			c.send(sendFrame(fmt.Sprintf("m%04d", i), conv, i))
		}
		acked, refused := map[string]bool{}, map[string]bool{}
		start := time.Now()
		for range pending {
			f := c.next(10 * time.Second)
			switch {
			case f.Type == "ack":
				acked[f.ID] = true
			case f.Type == "error" && f.Code == "unavailable":
				refused[f.ID] = true
			default:
				t.Fatalf("round %d: unexpected frame %+v", round, f)
			}
		}
		if round == 0 {
			if len(refused) == 0 {
				t.Fatalf("a burst of %d over a limit of 2 got no refusal", n)
			}
			if d := time.Since(start); d > 8*time.Second {
				t.Fatalf("answers took %v", d)
			}
		}
		refusals += len(refused)
		// What was admitted is a prefix of what was sent this round.
		var next []int
		for k, i := range pending {
			id := fmt.Sprintf("m%04d", i)
			if acked[id] == refused[id] {
				t.Fatalf("round %d: %s acked %v, refused %v", round, id, acked[id], refused[id])
			}
			if refused[id] {
				next = append(next, i)
			} else if len(next) > 0 {
				t.Fatalf("round %d: %s acked after %s (command %d of the round) was refused", round, id, fmt.Sprintf("m%04d", next[0]), k)
			}
		}
		if len(next) == len(pending) {
			t.Fatalf("round %d: nothing admitted", round)
		}
		pending = next
	}
	wantInOrder(t, s.allHistory(a, conv), n)
	if got := metric(t, s.main.Addr, "chat_commands_refused_busy_total"); got < 1 {
		t.Fatalf("chat_commands_refused_busy_total = %v after %d refusals", got, refusals)
	}
}

// With the admission wait, the same burst waits for slots instead: every
// command is acked, none refused, in the order sent.
func TestAdmissionWait(t *testing.T) {
	t.Parallel()
	s := startWith(t, func(c *config.Config) { c.CommandsInFlight = 2; c.AdmissionWait = 5 * time.Second })
	a, b := s.user("alice"), s.user("bob")
	conv := s.direct(a, b)
	c := dial(t, s.main.Addr, a.token)
	c.sync(map[string]int64{conv: 0})
	const n = 200
	for i := range n {
		c.send(sendFrame(fmt.Sprintf("m%04d", i), conv, i))
	}
	for i := range n {
		f := c.next(10 * time.Second)
		if f.Type != "ack" {
			t.Fatalf("answer %d: %+v, want an ack", i, f)
		}
	}
	wantInOrder(t, s.allHistory(a, conv), n)
	if got := metric(t, s.main.Addr, "chat_commands_refused_busy_total"); got != 0 {
		t.Fatalf("chat_commands_refused_busy_total = %v, want 0", got)
	}
}

// wantInOrder checks that list holds the n sends m0000, m0001, … at seqs
// 1, 2, …: each once, in the order sent.
func wantInOrder(t *testing.T, list []event, n int) {
	t.Helper()
	if len(list) != n {
		t.Fatalf("history has %d events, want %d", len(list), n)
	}
	for i, ev := range list {
		if want := fmt.Sprintf("m%04d", i); ev.ID != want || ev.Seq != int64(i+1) {
			t.Fatalf("event %d is %s at seq %d, want %s at %d", i, ev.ID, ev.Seq, want, i+1)
		}
	}
}

// metric reads one counter or gauge from addr's /metrics.
func metric(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no %s in /metrics", name)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}
