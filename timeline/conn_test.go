package timeline

import (
	"testing"
	"time"
)

// The embedded server syncs as CHAT_STREAM_SYNC says: SyncAlways, or the
// interval, or nats-server's 2-minute default when none is given.
func TestEmbeddedSync(t *testing.T) {
	for _, tc := range []struct {
		sync     Sync
		always   bool
		interval time.Duration
	}{
		{Sync{Always: true}, true, 2 * time.Minute},
		{Sync{Interval: time.Second}, false, time.Second},
		{Sync{}, false, 2 * time.Minute},
	} {
		ns, err := StartEmbedded(t.TempDir(), "127.0.0.1", -1, tc.sync)
		if err != nil {
			t.Fatal(err)
		}
		js := ns.JetStreamConfig()
		ns.Shutdown()
		ns.WaitForShutdown()
		if js == nil || js.SyncAlways != tc.always || js.SyncInterval != tc.interval {
			t.Errorf("sync %v: server has %+v; want always=%v interval=%v", tc.sync, js, tc.always, tc.interval)
		}
	}
}
