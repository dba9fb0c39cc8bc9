//go:build linux || darwin

package timeline_test

import (
	"context"
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/timeline"
)

// BenchmarkStorageFloor is the least JetStream work one acked message asks
// of the one-process mode, with none of seqchat's own code on the way: the
// embedded server on file storage, reached in process as chatd reaches it,
// and per message what the design stores: its command on CMDS (a work
// queue in memory), a delivery of it to a pull consumer and its ack, its
// event on TIMELINE (file) and its command id in DEDUPE (file), written the
// cheapest way there is (plain publishes, a PubAck for the last of a batch
// only). No
// WebSocket, no sequencing, no projection, no Postgres or Redis. It
// reports the process's CPU (server, client and GC: they share a process,
// as in chatd) per message, what docs/benchmarks.md sets against the
// targets of CPU per acked message.
//
//	go test -run '^$' -bench StorageFloor -benchtime 200000x ./timeline/
//
// grouped16 is saturation: commands travel 16 to a CMDS message (as lanes
// group them under load) and every write is pipelined. alone is a quiet
// system (1,000 msgs/s is one command every millisecond): each command
// goes alone and each step waits for the one before, as it must for one
// command. The floor leaves out more than it keeps: it is generous.
func BenchmarkStorageFloor(b *testing.B) {
	for _, group := range []int{16, 1} {
		for _, dedupe := range []bool{true, false} {
			name := "grouped16"
			if group == 1 {
				name = "alone"
			}
			if !dedupe {
				name += "/no-dedupe"
			}
			b.Run(name, func(b *testing.B) { storageFloor(b, group, dedupe) })
		}
	}
}

func storageFloor(b *testing.B, group int, dedupe bool) {
	ctx := testenv.Context(b, 10*time.Minute)
	c, err := timeline.Connect(ctx, "", b.TempDir(), timeline.Sync{}, "floor", testenv.Logger(b))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := timeline.Ensure(ctx, c.JS, timeline.Settings{Storage: "file"}); err != nil {
		b.Fatal(err)
	}
	cons, err := c.JS.CreateOrUpdateConsumer(ctx, timeline.CmdsStream, jetstream.ConsumerConfig{
		Durable: "floor", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1 << 16,
	})
	if err != nil {
		b.Fatal(err)
	}
	// A command and an event of a typical size (docs/benchmarks.md's
	// messages: a ULID id, a sixty-byte text).
	command := []byte(`{"type":"send","id":"01JD5Z1Q8W2X3Y4Z5A6B7C8D9E","conv":"c1","from":"u1","body":{"text":"a message of a typical length, some sixty bytes"}}`)
	event := []byte(`{"conv":"c1","seq":1,"kind":"message","id":"01JD5Z1Q8W2X3Y4Z5A6B7C8D9E","from":"u1","ts":1763800000000,"body":{"text":"a message of a typical length, some sixty bytes"}}`)
	cmdMsg := make([]byte, 0, group*len(command))
	for range group {
		cmdMsg = append(cmdMsg, command...)
	}

	// The producer stores the commands; the consumer does the rest, as a
	// sequencer would: per command an event and a DEDUPE entry, pipelined
	// over its fetched batch, then the acks of the commands.
	consumed := make(chan error, 1)
	messages := (b.N + group - 1) / group
	// n counts commands.
	go func() {
		n := 0
		fetch := 256
		if group == 1 {
			fetch = 1
		}
		for n < messages*group {
			batch, err := cons.Fetch(fetch, jetstream.FetchMaxWait(5*time.Second))
			if err != nil {
				consumed <- err
				return
			}
			var got []jetstream.Msg
			for m := range batch.Messages() {
				got = append(got, m)
			}
			if err := batch.Error(); err != nil && len(got) == 0 {
				consumed <- err
				return
			}
			// Plain publishes but the last of each stream, which waits
			// for its PubAck: one server stores one connection's messages
			// in order (as timeline.Dedupe.Remember relies on), so the
			// batch is stored once that is.
			count := len(got) * group
			for k := range count {
				publish := func(subject string, data []byte) error { return c.NC.Publish(subject, data) }
				if k == count-1 {
					publish = func(subject string, data []byte) error { _, err := c.JS.PublishAsync(subject, data); return err }
				}
				if err := publish(timeline.TimelineSubject("c"+strconv.Itoa(n%100)), event); err != nil {
					consumed <- err
					return
				}
				if dedupe {
					if err := publish("$KV."+timeline.DedupeBucket+".01JD5Z1Q8W2X3Y4Z5A6B7C8D9E."+strconv.Itoa(n)+"Q8W2X3Y4Z5A6B7C8D9E", event[:40]); err != nil {
						consumed <- err
						return
					}
				}
				n++
			}
			if err := waitAcks(ctx, c.JS); err != nil {
				consumed <- err
				return
			}
			for _, m := range got {
				if err := m.Ack(); err != nil {
					consumed <- err
					return
				}
			}
		}
		consumed <- nil
	}()

	before := cpuTime()
	start := time.Now()
	b.ResetTimer()
	for i := range messages {
		m := nats.NewMsg(timeline.CmdSubject(8, "c"+strconv.Itoa(i%100)))
		m.Data = cmdMsg
		if group == 1 {
			// Alone: the edge waits for CMDS's ack before the next.
			if _, err := c.JS.PublishMsg(ctx, m); err != nil {
				b.Fatal(err)
			}
			continue
		}
		if _, err := c.JS.PublishMsgAsync(m); err != nil {
			b.Fatal(err)
		}
	}
	if err := waitAcks(ctx, c.JS); err != nil {
		b.Fatal(err)
	}
	if err := <-consumed; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	elapsed, cpu := time.Since(start), cpuTime()-before
	n := float64(messages * group)
	b.ReportMetric(cpu.Seconds()*1e6/n, "cpu-µs/msg")
	b.ReportMetric(n/elapsed.Seconds(), "msgs/s")
}

// waitAcks waits for every asynchronous publish's PubAck.
func waitAcks(ctx context.Context, js jetstream.JetStream) error {
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for PubAcks: %w", ctx.Err())
	}
}

// cpuTime is the CPU this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
