package serve

import (
	"sync"
	"time"
)

// Repeats keeps a failure that recurs (a store that is down, retried every
// second) from flooding the log: the first occurrence of a key is logged,
// then at most one line per interval, which says how many were held back;
// Clear ends the run so the caller can log the recovery once.
type Repeats struct {
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	runs map[string]*run
}

type run struct {
	last       time.Time
	suppressed int
}

// NewRepeats returns a Repeats that lets a key through once per every.
func NewRepeats(every time.Duration) *Repeats {
	return &Repeats{every: every, now: time.Now, runs: map[string]*run{}}
}

// Allow reports whether an occurrence of key is to be logged now and, if
// so, how many occurrences since the last logged one were held back.
func (r *Repeats) Allow(key string) (ok bool, suppressed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	cur, seen := r.runs[key]
	if !seen {
		if len(r.runs) >= 1000 {
			clear(r.runs) // keys are a handful of messages; stay bounded anyway
		}
		r.runs[key] = &run{last: now}
		return true, 0
	}
	if now.Sub(cur.last) < r.every {
		cur.suppressed++
		return false, 0
	}
	n := cur.suppressed
	cur.last, cur.suppressed = now, 0
	return true, n
}

// Clear ends key's run of failures; it reports whether there was one.
func (r *Repeats) Clear(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.runs[key]
	delete(r.runs, key)
	return ok
}
