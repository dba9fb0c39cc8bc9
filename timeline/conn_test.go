package timeline

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
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

// One embedded server per data directory: while a process holds it, a
// second Connect on it (a second chatd, `chatd rebuild` beside a running
// chatd) fails and says who holds it; once the first closes, it is free.
func TestDataDirHasOneEmbeddedServer(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	first, err := Connect(ctx, "", dir, Sync{}, "first", log)
	if err != nil {
		t.Fatal(err)
	}
	second, err := Connect(ctx, "", dir, Sync{}, "second", log)
	if err == nil {
		second.Close()
		first.Close()
		t.Fatal("a second embedded server started on a data directory in use")
	}
	if !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), strconv.Itoa(os.Getpid())) {
		t.Errorf("error %q does not say the directory is in use, and by whom", err)
	}
	first.Close()
	again, err := Connect(ctx, "", dir, Sync{}, "again", log)
	if err != nil {
		t.Fatalf("the directory stayed taken after Close: %v", err)
	}
	again.Close()
}
