package sequencer

import (
	"sync"

	"github.com/seqchat/seqchat/events"
)

// recent remembers the results of recent commands so that a quick resend is
// answered without touching the timeline. Two generations bound its size.
type recent struct {
	mu       sync.Mutex
	max      int
	cur, old map[string]events.Result
}

func newRecent(max int) *recent {
	return &recent{max: max, cur: map[string]events.Result{}, old: map[string]events.Result{}}
}

func (r *recent) get(key string) (events.Result, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.cur[key]; ok {
		return v, true
	}
	v, ok := r.old[key]
	return v, ok
}

func (r *recent) put(key string, v events.Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.cur) >= r.max/2 {
		r.old, r.cur = r.cur, make(map[string]events.Result, r.max/2)
	}
	r.cur[key] = v
}
