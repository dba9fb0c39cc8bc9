package timeline

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/seqchat/seqchat/events"
)

// Admission control. A process that falls behind must not queue commands
// whose clients will have given up (and resent) by the time they are
// sequenced: working through such a backlog answers nobody in time, and
// goodput collapses. So a process bounds the commands it has in flight
// (taken in, not yet answered). A command over the bound waits a short
// while for a slot (the admission wait: at capacity slots free up all the
// time, and a connection whose command waits reads nothing more meanwhile,
// which holds its client back), and is refused with unavailable once that
// wait is over; the client retries later with the same id
// (docs/protocol.md, Overload). Refusing at once instead made an open-loop
// client's every refused command come back a second later and be refused
// again: at 10,000 commands/s offered to a process that sequences about
// 7,000, 27,000 refusals a second took the CPU and goodput fell to 3,500/s.
// By Little's law the bound is also a bound on the wait: at throughput X, a
// command waits about limit/X, plus the admission wait at most.

// BusyRetry is the retry hint of a command refused for load.
const BusyRetry = time.Second

// BusyError is the refusal of a command over the in-flight limit.
type BusyError struct{ error }

func (e *BusyError) Unwrap() error { return e.error }

// RetryAfter is when the client may try again (REST: Retry-After).
func (e *BusyError) RetryAfter() time.Duration { return BusyRetry }

// Busy returns the refusal of a command over the limit.
func Busy() error {
	return &BusyError{events.Errorf(events.CodeUnavailable, "server busy; retry in %ds with the same id", int(BusyRetry.Seconds()))}
}

type admission struct {
	limit    int64 // 0: none
	wait     time.Duration
	n        atomic.Int64
	waiting  atomic.Int64  // commands waiting for a slot
	freed    chan struct{} // a slot was given back while some waited
	refused  prometheus.Counter
	inFlight prometheus.GaugeFunc
}

// Limit bounds the commands in flight in this process (api and edges
// together) to limit (0 lifts the bound); one over it waits up to wait for
// a slot. Refusals are counted in reg (nil: not exported). Call it once,
// before the Submitter is used.
func (s *Submitter) Limit(limit int, wait time.Duration, reg prometheus.Registerer) {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := promauto.With(reg)
	s.adm.limit = int64(limit)
	s.adm.wait = wait
	s.adm.freed = make(chan struct{}, 64)
	s.adm.refused = f.NewCounter(prometheus.CounterOpts{
		Name: "chat_commands_refused_busy_total",
		Help: "Commands refused with unavailable because the process had its limit of commands in flight for the whole admission wait.",
	})
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "chat_commands_in_flight",
		Help: "Commands taken in and not yet answered (the admission limit's count).",
	}, func() float64 { return float64(s.adm.n.Load()) })
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "chat_commands_awaiting_admission",
		Help: "Commands over the in-flight limit waiting for a slot.",
	}, func() float64 { return float64(s.adm.waiting.Load()) })
}

// Admit takes a slot for one command, waiting up to the admission wait
// (or until ctx ends) when the process has its limit in flight, and reports
// false (counting the refusal) if none came free. Each true must be
// followed by one Release once the command is answered.
func (s *Submitter) Admit(ctx context.Context) bool {
	a := &s.adm
	if a.take() {
		return true
	}
	if a.wait > 0 {
		a.waiting.Add(1)
		timer := time.NewTimer(a.wait)
		defer func() {
			timer.Stop()
			a.waiting.Add(-1)
		}()
		for !a.take() {
			select {
			case <-a.freed:
			case <-timer.C:
				return a.refuse()
			case <-ctx.Done():
				return a.refuse()
			}
		}
		return true
	}
	return a.refuse()
}

// take takes a slot if one is free.
func (a *admission) take() bool {
	if a.n.Add(1) > a.limit && a.limit > 0 {
		a.n.Add(-1)
		return false
	}
	return true
}

func (a *admission) refuse() bool {
	if a.refused != nil {
		a.refused.Inc()
	}
	return false
}

// Release gives back a slot taken by Admit.
func (s *Submitter) Release() {
	a := &s.adm
	a.n.Add(-1)
	// A waiter that missed this wake-up (the buffer was full) takes the
	// next: while commands wait, slots free up all the time.
	if a.waiting.Load() > 0 {
		select {
		case a.freed <- struct{}{}:
		default:
		}
	}
}
