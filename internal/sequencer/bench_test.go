package sequencer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/timeline"
)

// BenchmarkSequencer measures the sequencer alone: b.N commands spread over
// 1,000 conversations wait in CMDS (embedded JetStream, file storage); the
// clock runs from starting the sequencer until all of them are events in
// TIMELINE.
//
//	go test -run '^$' -bench Sequencer -benchtime 200000x ./internal/sequencer/
//
// file-pipelined is the one-process default (the embedded JetStream, one
// file-backed replica: the sequencer pipelines), file the same streams on
// an external server (atomic batches for large batches, else rounds), with
// traffic spread over 1,000 conversations and concentrated on 10;
// memory-atomic shows what JetStream's atomic batches give where staging
// them is cheap.
func BenchmarkSequencer(b *testing.B) {
	for _, mode := range []struct {
		name              string
		storage           string
		atomic, pipelined bool
		convs             int
	}{
		{"file-pipelined/1000convs", "file", false, true, 1000},
		{"file-pipelined/10convs", "file", false, true, 10},
		{"file/1000convs", "file", false, false, 1000},
		{"file/10convs", "file", false, false, 10},
		{"memory-atomic/1000convs", "memory", true, false, 1000},
	} {
		b.Run(mode.name, func(b *testing.B) {
			r := newRig(b, func(c *config.Config) { c.StreamStorage = mode.storage; c.Partitions = 8 })
			r.atomic, r.pipelined = mode.atomic, mode.pipelined
			benchSequencer(b, r, mode.convs)
		})
	}
}

func benchSequencer(b *testing.B, r *rig, convs int) {
	members := []string{"alice", "bob"}
	for c := 0; c < convs; c++ {
		conv := fmt.Sprintf("c%04d", c)
		if c == 0 {
			testenv.Seed(b, r.pool, conv, members...)
			continue
		}
		if _, err := r.pool.Exec(context.Background(), "INSERT INTO conversations (id, kind, title, owner_id) VALUES ($1, 'group', '', 'alice')", conv); err != nil {
			b.Fatal(err)
		}
		if _, err := r.pool.Exec(context.Background(), "INSERT INTO members (conv_id, user_id) VALUES ($1, 'alice'), ($1, 'bob')", conv); err != nil {
			b.Fatal(err)
		}
	}
	nc, err := nats.Connect(r.cfg.NATSURL)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := nc.JetStream(nats.PublishAsyncMaxPending(8192))
	body := json.RawMessage(`{"text":"a message of a typical length, some sixty bytes"}`)
	for i := 0; i < b.N; i++ {
		cmd := events.Command{Op: events.OpSend, ID: fmt.Sprintf("b%d", i), Conv: fmt.Sprintf("c%04d", i%convs), From: members[i%2], Body: body}
		data, _ := json.Marshal(cmd)
		if _, err := js.PublishAsync(timeline.CmdSubject(r.cfg.Partitions, cmd.Conv), data); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	stream, err := r.nc.JS.Stream(context.Background(), timeline.TimelineStream)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	before := r.nc.NC.Stats()
	cpuBefore := cpuTime(b)
	start := time.Now()
	r.start(b, "bench")
	for {
		info, err := stream.Info(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if info.State.Msgs >= uint64(b.N) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	// Messages the sequencer's connection sent and received per event: each
	// awaited answer (a PubAck, a direct get's reply) is one message in.
	// Counted once every command is acked, i.e. its result is in DEDUPE.
	cmds, err := r.nc.JS.Stream(context.Background(), timeline.CmdsStream)
	if err != nil {
		b.Fatal(err)
	}
	testenv.Eventually(b, time.Minute, "every command acked", func() bool {
		info, err := cmds.Info(context.Background())
		return err == nil && info.State.Msgs == 0
	})
	after := r.nc.NC.Stats()
	// CPU time of the whole test process (sequencer and embedded NATS) per
	// event, until every command is acked: steadier than the rate on a
	// shared machine.
	b.ReportMetric(float64((cpuTime(b)-cpuBefore).Microseconds())/float64(b.N), "cpu-µs/event")
	b.ReportMetric(float64(after.OutMsgs-before.OutMsgs)/float64(b.N), "nats-out/event")
	b.ReportMetric(float64(after.InMsgs-before.InMsgs)/float64(b.N), "nats-in/event")
}

// cpuTime is the CPU time (user and system) the process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
