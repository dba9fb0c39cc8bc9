package cluster

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/projector/hooks"
)

const hookSecret = "cluster-webhook-secret"

type convSeq struct {
	conv string
	seq  int64
}

// hookReceiver is the projectors' webhook URL: it checks signatures and
// order, and keeps each event as it first arrived.
type hookReceiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	events   map[convSeq]string
	last     map[string]int64 // highest seq first seen per conversation
	bad      int              // bad signatures
	outOfSeq int              // first copies arriving below a conversation's highest
	dups     int
}

func newHookReceiver(t testing.TB) *hookReceiver {
	h := &hookReceiver{events: map[convSeq]string{}, last: map[string]int64{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if !hooks.Verify([]byte(hookSecret), body, r.Header.Get(hooks.SignatureHeader)) {
			h.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var b struct{ Events []json.RawMessage }
		if err := json.Unmarshal(body, &b); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		for _, raw := range b.Events {
			ev, err := events.DecodeEvent(raw)
			if err != nil {
				continue
			}
			k := convSeq{ev.Conv, ev.Seq}
			if _, ok := h.events[k]; ok {
				h.dups++
				continue
			}
			h.events[k] = string(raw)
			if ev.Seq <= h.last[ev.Conv] {
				h.outOfSeq++
			}
			h.last[ev.Conv] = max(h.last[ev.Conv], ev.Seq)
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) has(k convSeq, raw string) (bool, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	got, ok := h.events[k]
	return ok, ok && got == raw
}

// timelineRange reads TIMELINE's events with stream seqs in [from, to].
func (c *Cluster) timelineRange(t *testing.T, from, to uint64) map[convSeq]string {
	nc, js := c.js()
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, "TIMELINE", jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from})
	if err != nil {
		t.Fatalf("read TIMELINE: %v", err)
	}
	out := map[convSeq]string{}
	for {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatalf("read TIMELINE: %v", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, _ := m.Metadata()
			if md.Sequence.Stream > to {
				return out
			}
			ev, err := events.DecodeEvent(m.Data())
			if err == nil {
				out[convSeq{ev.Conv, ev.Seq}] = string(m.Data())
			}
			if md.Sequence.Stream == to {
				return out
			}
		}
		// An empty fetch on a cluster still settling after a kill is no
		// end: TIMELINE holds up to its last sequence, read before. Only the
		// context's deadline ends the wait.
		if n == 0 && ctx.Err() != nil {
			t.Fatalf("TIMELINE read no further than before stream seq %d in 60 s", to)
		}
	}
}

func (c *Cluster) timelineLast(t *testing.T) uint64 {
	nc, js := c.js()
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "TIMELINE")
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo().State.LastSeq
}

// killWebhookProjector SIGKILLs the projector delivering to the webhook URL
// while traffic flows, restarts it, and checks that every event appended
// from before the kill until after the standby took over reached the URL,
// byte for byte as TIMELINE holds it, signed, each conversation in order.
func killWebhookProjector(t *testing.T, c *Cluster, tr *traffic) (time.Time, time.Time) {
	key := hooks.ConsumerName(c.hook.srv.URL)
	var victim *proc
	waitFor(t, 30*time.Second, "a webhook lease holder", func() bool {
		victim = c.procByName(c.leaseHolder(key))
		return victim != nil
	})
	from := c.timelineLast(t) + 1
	time.Sleep(time.Second) // events in flight to the receiver
	t.Logf("webhook lease %s held by %s; SIGKILL", key, victim.name)
	at := time.Now()
	victim.signal(t, syscall.SIGKILL, 10*time.Second)
	waitFor(t, 30*time.Second, "the standby holding the webhook lease", func() bool {
		h := c.leaseHolder(key)
		return h != "" && h != victim.name
	})
	time.Sleep(time.Second)
	to := c.timelineLast(t)
	victim.start(t)
	victim.waitHTTP(t, "/readyz", 60*time.Second)
	want := c.timelineRange(t, from, to)
	if len(want) == 0 {
		t.Fatalf("no events appended around the kill (stream seqs %d..%d)", from, to)
	}
	var missing, differ int
	waitFor(t, 60*time.Second, "every event around the kill at the webhook", func() bool {
		missing, differ = 0, 0
		for k, raw := range want {
			ok, same := c.hook.has(k, raw)
			if !ok {
				missing++
			} else if !same {
				differ++
			}
		}
		return missing == 0
	})
	c.hook.mu.Lock()
	bad, outOfSeq, dups := c.hook.bad, c.hook.outOfSeq, c.hook.dups
	c.hook.mu.Unlock()
	t.Logf("webhook: %d events appended around the kill all delivered (%d redelivered copies so far); took %v", len(want), dups, time.Since(at).Round(time.Millisecond))
	if differ > 0 || bad > 0 || outOfSeq > 0 {
		t.Errorf("webhook: %d events differ from TIMELINE, %d bad signatures, %d first copies out of seq order", differ, bad, outOfSeq)
	}
	return at, time.Now()
}
