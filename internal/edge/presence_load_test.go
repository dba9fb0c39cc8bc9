package edge_test

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPresenceLoad measures how many presence transitions per second the
// system sustains end to end: users connect and leave over and over on two
// edges, each transition announced to a friend who is connected. Run it by
// hand: SEQCHAT_PRESENCE_LOAD=1 go test -run TestPresenceLoad -v ./internal/edge/
func TestPresenceLoad(t *testing.T) {
	if os.Getenv("SEQCHAT_PRESENCE_LOAD") == "" {
		t.Skip("a measurement: set SEQCHAT_PRESENCE_LOAD=1")
	}
	s := start(t)
	const users, dur = 100, 5 * time.Second
	watcher := s.user("watcher")
	list := make([]user, users)
	for i := range list {
		list[i] = s.user(fmt.Sprintf("user%03d", i))
		s.befriend(watcher, list[i])
	}
	w := mustDial(t, s.main.Addr, watcher.token)
	var frames atomic.Int64
	go func() {
		for range w.frames {
			frames.Add(1)
		}
	}()
	var cycles atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(dur)
	for i, u := range list {
		addr := s.main.Addr
		if i%2 == 1 {
			addr = s.edge.Addr
		}
		wg.Go(func() {
			for time.Now().Before(stop) {
				c, _, err := dialRaw(t, addr, u.token, nil)
				if err != nil {
					t.Errorf("dial: %v", err)
					return
				}
				c.ws.Close()
				<-c.err
				cycles.Add(1)
			}
		})
	}
	wg.Wait()
	time.Sleep(500 * time.Millisecond) // the last offlines land
	n := cycles.Load()
	t.Logf("%d users: %d connect/close cycles in %v = %.0f transitions/s; watcher got %d presence frames (want %d)",
		users, n, dur, float64(2*n)/dur.Seconds(), frames.Load(), 2*n)
}
