package timeline_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/timeline"
)

// replicatedLogs returns a Log on each server of an R3 cluster, each over a
// connection to that server alone: a direct get is answered by a replica on
// the requester's own server when it has one, so each Log reads from a
// different replica, two of them followers.
func replicatedLogs(t testing.TB, ctx context.Context) []*timeline.Log {
	t.Helper()
	urls := strings.Split(testenv.NATSCluster(t, 3), ",")
	var logs []*timeline.Log
	for i, url := range urls {
		c, err := timeline.Connect(ctx, url, "", timeline.Sync{}, fmt.Sprintf("%s-%d", t.Name(), i), testenv.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		if i == 0 {
			if err := timeline.Ensure(ctx, c.JS, timeline.Settings{Storage: "file", Replicas: 3}); err != nil {
				t.Fatal(err)
			}
		}
		logs = append(logs, timeline.New(c.NC, c.JS))
	}
	return logs
}

// TestReadYourWritesOnReplicas is invariant 4 at the timeline: once an
// append is acked, every server's reads of the conversation show it, even
// one whose replica has not applied the append yet.
func TestReadYourWritesOnReplicas(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t, 2*time.Minute)
	logs := replicatedLogs(t, ctx)
	// Followers join the direct-get queue group a couple of seconds after
	// the stream is created (the server checks every 2 s that they are
	// caught up): keep appending and reading well past that.
	until := time.Now().Add(8 * time.Second)
	for i := int64(1); i <= 200 || time.Now().Before(until); i++ {
		writer := logs[i%int64(len(logs))]
		streamSeq, _, err := writer.Append(ctx, timeline.Entry{Event: ev("ryw", i), MsgID: fmt.Sprintf("ryw-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		for n, tl := range logs {
			pos, err := tl.Last(ctx, "ryw")
			if err != nil {
				t.Fatal(err)
			}
			if pos.Seq != i || pos.StreamSeq != streamSeq {
				t.Fatalf("round %d: server %d's Last = %+v, want seq %d at #%d", i, n+1, pos, i, streamSeq)
			}
			got, err := tl.Read(ctx, "ryw", i-1, 10, 0)
			if err != nil {
				t.Fatalf("round %d: server %d's Read: %v", i, n+1, err)
			}
			if len(got) != 1 || got[0].Seq != i {
				t.Fatalf("round %d: server %d's Read after %d = %d events, want seq %d", i, n+1, i-1, len(got), i)
			}
			s, err := tl.Get(ctx, streamSeq)
			if err != nil || s.Seq != i {
				t.Fatalf("round %d: server %d's Get(#%d) = seq %d, %v; want seq %d", i, n+1, streamSeq, s.Seq, err, i)
			}
		}
	}
}
