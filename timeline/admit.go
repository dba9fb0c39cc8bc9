package timeline

import (
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
// (taken in, not yet answered) and refuses one over the bound at once with
// unavailable; the client retries later with the same id (docs/protocol.md,
// Overload). By Little's law the bound is also a bound on the wait: at
// throughput X, a command waits about limit/X.

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
	n        atomic.Int64
	refused  prometheus.Counter
	inFlight prometheus.GaugeFunc
}

// Limit bounds the commands in flight in this process (api and edges
// together) to limit; 0 lifts the bound. Refusals are counted in reg (nil:
// not exported). Call it once, before the Submitter is used.
func (s *Submitter) Limit(limit int, reg prometheus.Registerer) {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := promauto.With(reg)
	s.adm.limit = int64(limit)
	s.adm.refused = f.NewCounter(prometheus.CounterOpts{
		Name: "chat_commands_refused_busy_total",
		Help: "Commands refused with unavailable because the process had its limit of commands in flight.",
	})
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "chat_commands_in_flight",
		Help: "Commands taken in and not yet answered (the admission limit's count).",
	}, func() float64 { return float64(s.adm.n.Load()) })
}

// Admit takes a slot for one command, or reports false (and counts the
// refusal) when the process has its limit in flight. Each true must be
// followed by one Release once the command is answered.
func (s *Submitter) Admit() bool {
	if s.adm.limit <= 0 {
		s.adm.n.Add(1)
		return true
	}
	if s.adm.n.Add(1) > s.adm.limit {
		s.adm.n.Add(-1)
		if s.adm.refused != nil {
			s.adm.refused.Inc()
		}
		return false
	}
	return true
}

// Release gives back a slot taken by Admit.
func (s *Submitter) Release() { s.adm.n.Add(-1) }
