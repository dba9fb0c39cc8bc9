package activity

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// The rate limits count what clients do in fixed windows kept in Redis,
// so that a limit holds across every replica: failed logins per username and
// per address, sign-ups per address, commands per user across connections.
//
// A key's counter for window w is "<prefix>rl:<key>:<w>", where w is the
// Unix time divided by the window: it needs no reset and expires by itself.
// A fixed window lets at most twice the limit through around a window's
// edge, which is fine for abuse limits and costs one round trip.

// Limit is how many hits a key may take per window.
type Limit struct {
	Max    int
	Window time.Duration
}

// Windows counts hits in Redis.
type Windows struct {
	rdb    redis.Cmdable
	prefix string
	now    func() time.Time
}

// NewWindows returns counters whose keys start with prefix.
func NewWindows(rdb redis.Cmdable, prefix string) *Windows {
	return &Windows{rdb: rdb, prefix: prefix, now: time.Now}
}

// window returns the counter key of the current window and how long it has left.
func (w *Windows) window(key string, l Limit) (string, time.Duration) {
	now := w.now()
	n := now.UnixNano() / int64(l.Window)
	end := time.Unix(0, (n+1)*int64(l.Window))
	return w.prefix + "rl:" + key + ":" + strconv.FormatInt(n, 10), end.Sub(now)
}

// Over reports whether key has used up its limit in this window, and if
// so, how long until it may try again. It counts nothing.
func (w *Windows) Over(ctx context.Context, key string, l Limit) (bool, time.Duration, error) {
	k, left := w.window(key, l)
	n, err := w.rdb.Get(ctx, k).Int()
	if err == redis.Nil {
		return false, 0, nil
	}
	if err != nil {
		return false, 0, fmt.Errorf("read rate limit: %w", err)
	}
	return n >= l.Max, left, nil
}

// Hit counts one hit on key and reports whether it was within the limit
// (and if not, how long until the window ends).
func (w *Windows) Hit(ctx context.Context, key string, l Limit) (bool, time.Duration, error) {
	n, left, err := w.Add(ctx, key, l, 1)
	if err != nil {
		return true, 0, err
	}
	return n <= int64(l.Max), left, nil
}

// Add counts n hits on key and returns the window's total.
func (w *Windows) Add(ctx context.Context, key string, l Limit, n int64) (int64, time.Duration, error) {
	k, left := w.window(key, l)
	var incr *redis.IntCmd
	_, err := w.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		incr = p.IncrBy(ctx, k, n)
		p.PExpire(ctx, k, left+time.Second)
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("count rate limit: %w", err)
	}
	return incr.Val(), left, nil
}

// Reset forgets key's hits in this window (a successful login clears the
// failures counted against its username).
func (w *Windows) Reset(ctx context.Context, key string, l Limit) error {
	k, _ := w.window(key, l)
	return w.rdb.Del(ctx, k).Err()
}

// Shared is a per-key limit across replicas that costs no round trip per
// hit: each process counts locally and adds its counts to Redis every flush
// interval, learning the total of all processes in return. The first hit of
// a key in a window reads the total first (one round trip per key and
// window), so a user who moves to another replica brings their count along.
// A key can overshoot its limit by what the other processes let through in
// one interval.
// When Redis is down it lets everything through (availability over
// precision; the per-connection limit still holds).
type Shared struct {
	w     *Windows
	limit Limit
	every time.Duration

	mu   sync.Mutex
	keys map[string]*shared
}

type shared struct {
	win     int64 // which window the counts are of
	total   int64 // every process's hits, as of the last flush
	pending int64 // this process's hits not yet added to Redis
}

// NewShared returns a shared limit; Run must flush it. It flushes every
// tenth of the window, at most every 100 ms: often enough that the other
// processes' counts arrive well within a window, and a round trip per
// tenth of a second per process costs Redis nothing.
func NewShared(w *Windows, limit Limit) *Shared {
	every := min(100*time.Millisecond, limit.Window/10)
	return &Shared{w: w, limit: limit, every: every, keys: map[string]*shared{}}
}

func (s *Shared) win(now time.Time) int64 { return now.UnixNano() / int64(s.limit.Window) }

// Allow counts one hit on key unless the key is over its limit; when it is,
// it returns how long until the window ends.
func (s *Shared) Allow(key string) (bool, time.Duration) {
	now := s.w.now()
	w := s.win(now)
	s.mu.Lock()
	st := s.keys[key]
	if st == nil || st.win != w {
		s.mu.Unlock()
		total := s.read(key)
		s.mu.Lock()
		if st = s.keys[key]; st == nil || st.win != w {
			st = &shared{win: w}
			s.keys[key] = st
		}
		st.total = max(st.total, total)
	}
	defer s.mu.Unlock()
	if st.total+st.pending >= int64(s.limit.Max) {
		return false, time.Unix(0, (w+1)*int64(s.limit.Window)).Sub(now)
	}
	st.pending++
	return true, 0
}

// read returns key's total in this window, 0 when Redis does not answer
// quickly (it then fails open).
func (s *Shared) read(key string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	k, _ := s.w.window(key, s.limit)
	n, _ := s.w.rdb.Get(ctx, k).Int64()
	return n
}

// Run flushes until ctx ends.
func (s *Shared) Run(ctx context.Context) error {
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.flush(ctx)
		}
	}
}

func (s *Shared) flush(ctx context.Context) {
	w := s.win(s.w.now())
	type add struct {
		key string
		n   int64
	}
	var adds []add
	s.mu.Lock()
	for k, st := range s.keys {
		switch {
		case st.win != w:
			delete(s.keys, k) // a past window: nothing left to limit
		case st.pending > 0:
			adds = append(adds, add{k, st.pending})
		}
	}
	s.mu.Unlock()
	if len(adds) == 0 {
		return
	}
	cmds := make([]*redis.IntCmd, len(adds))
	_, err := s.w.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, a := range adds {
			k, left := s.w.window(a.key, s.limit)
			cmds[i] = p.IncrBy(ctx, k, a.n)
			p.PExpire(ctx, k, left+time.Second)
		}
		return nil
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, a := range adds {
		st := s.keys[a.key]
		if st == nil || st.win != w {
			continue
		}
		st.pending -= a.n
		if err == nil {
			st.total = max(st.total, cmds[i].Val())
		}
	}
}
