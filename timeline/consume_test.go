package timeline_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/timeline"
)

// ConsumeEvents hands a projection the events that decode, each with its
// stream sequence, origin and message; an undecodable one is logged once,
// however often its batch is retried, and acked with the batch even when it
// is the batch's last.
func TestConsumeEventsSkipsUndecodable(t *testing.T) {
	t.Parallel()
	c := testenv.Streams(t)
	ctx := testenv.Context(t, 30*time.Second)
	tl, js := timeline.New(c.NC, c.JS), c.JS
	if _, _, err := tl.Append(ctx, timeline.Entry{Event: ev("c1", 1), Origin: "e1/7"}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, timeline.TimelineSubject("c1"), []byte("not an event")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tl.Append(ctx, timeline.Entry{Event: ev("c1", 2)}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, timeline.TimelineSubject("c1"), []byte(`{"conv":`)); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, timeline.TimelineStream, jetstream.ConsumerConfig{
		Durable: "decode-test", AckPolicy: jetstream.AckAllPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}

	var logs testenv.LogBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	var got []timeline.Stored
	calls := 0
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err = timeline.ConsumeEvents(cctx, cons, 10, log, func(ctx context.Context, b *timeline.Events) error {
		calls++
		if calls == 1 {
			return errors.New("not yet") // the same batch comes again
		}
		if len(b.Msgs) != len(b.Stored) {
			t.Fatalf("%d messages for %d events", len(b.Msgs), len(b.Stored))
		}
		for i, s := range b.Stored {
			if want := s.Event.Encode(); string(b.Msgs[i].Data()) != string(want) {
				t.Fatalf("message %d holds %s, event %s", i, b.Msgs[i].Data(), want)
			}
		}
		got = append(got, b.Stored...)
		b.Ack()
		if b.Pending() == 0 {
			cancel()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Seq != 1 || got[0].StreamSeq != 1 || got[0].Origin != "e1/7" || got[1].Seq != 2 || got[1].StreamSeq != 3 || got[1].Origin != "" {
		t.Fatalf("got %+v, want seq 1 at #1 from e1/7 and seq 2 at #3", got)
	}
	if n := strings.Count(logs.String(), "undecodable event in TIMELINE"); n != 2 {
		t.Fatalf("%d undecodable events logged, want 2 (once each): %s", n, logs.String())
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.AckFloor.Stream != 4 {
		t.Fatalf("ack floor #%d, want #4: the undecodable last message is acked with its batch", info.AckFloor.Stream)
	}
}

// A projection with a linger takes, once a batch's first event is in, what
// comes within the linger into the same batch (up to its size), and hands
// over a batch that did not fill when the linger ends.
func TestProjectionLingerFillsBatches(t *testing.T) {
	t.Parallel()
	c := testenv.Streams(t)
	ctx := testenv.Context(t, 60*time.Second)
	tl := timeline.New(c.NC, c.JS)
	appendSeqs := func(from, to int64) { appendRange(ctx, t, tl, "c1", from, to) }
	appendSeqs(1, 1)
	batches := make(chan []int64, 10)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		p := timeline.Projection{Name: "linger-test", Start: jetstream.DeliverAllPolicy, Batch: 5, Linger: 2 * time.Second}
		done <- timeline.RunProjection(cctx, c.JS, p, testenv.Logger(t), func(ctx context.Context, b *timeline.Events) error {
			var seqs []int64
			for _, s := range b.Stored {
				seqs = append(seqs, s.Seq)
			}
			batches <- seqs
			b.Ack()
			return nil
		})
	}()
	// Once the first event is delivered, the batch holding it is lingering:
	// what is appended now joins it.
	testenv.Eventually(t, 10*time.Second, "the first event is delivered", func() bool {
		cons, err := c.JS.Consumer(ctx, timeline.TimelineStream, "linger-test")
		if err != nil {
			return false
		}
		info, err := cons.Info(ctx)
		return err == nil && info.Delivered.Stream == 1
	})
	appendSeqs(2, 6)
	if got := <-batches; len(got) != 5 || got[0] != 1 || got[4] != 5 {
		t.Fatalf("first batch %v, want seqs 1..5 (full)", got)
	}
	if got := <-batches; len(got) != 1 || got[0] != 6 {
		t.Fatalf("second batch %v, want seq 6 alone once the linger ended", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A projection with an AckDelay acks a batch that comes within the delay of
// the previous ack only when the delay is up (one ack then covers both), a
// batch that brings the unacked count to the batch size at once, and what it
// handled but had not acked yet when it stops on its way out.
func TestProjectionAckDelay(t *testing.T) {
	t.Parallel()
	c := testenv.Streams(t)
	ctx := testenv.Context(t, 60*time.Second)
	tl := timeline.New(c.NC, c.JS)
	appendSeqs := func(from, to int64) { appendRange(ctx, t, tl, "c1", from, to) }
	floor := func() uint64 {
		cons, err := c.JS.Consumer(ctx, timeline.TimelineStream, "ackdelay-test")
		if err != nil {
			return 0
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return 0
		}
		return info.AckFloor.Stream
	}
	const delay = 2 * time.Second
	handled := make(chan int64, 10)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		p := timeline.Projection{Name: "ackdelay-test", Start: jetstream.DeliverAllPolicy, Batch: 3, AckDelay: delay}
		done <- timeline.RunProjection(cctx, c.JS, p, testenv.Logger(t), func(ctx context.Context, b *timeline.Events) error {
			b.Ack()
			handled <- b.Stored[len(b.Stored)-1].Seq
			return nil
		})
	}()

	// The first ack after a quiet spell goes out at once.
	appendSeqs(1, 1)
	<-handled
	testenv.Eventually(t, 10*time.Second, "seq 1 acked", func() bool { return floor() == 1 })
	first := time.Now()
	// The next batch within the delay waits for it.
	appendSeqs(2, 2)
	<-handled
	testenv.Eventually(t, 10*time.Second, "seq 2 acked once the delay is up", func() bool { return floor() == 2 })
	if waited := time.Since(first); waited < delay/2 {
		t.Fatalf("seq 2 acked %v after seq 1, want about the delay (%v) later", waited, delay)
	}
	// A batch that brings the unacked count to the batch size is acked at
	// once: the timer would ack it too, but only after the delay.
	appendSeqs(3, 5)
	start := time.Now()
	for got := int64(0); got < 5; {
		got = <-handled
	}
	testenv.Eventually(t, 10*time.Second, "seqs 3..5 acked", func() bool { return floor() == 5 })
	if took := time.Since(start); took >= delay/2 {
		t.Fatalf("seqs 3..5 acked %v after they were appended, want at once (the delay is %v)", took, delay)
	}
	// Handled, not yet acked, and the projection stops: acked on the way out.
	appendSeqs(6, 6)
	<-handled
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "seq 6 acked when the projection stopped", func() bool { return floor() == 6 })
}

// appendRange appends conv's events from seq from to seq to.
func appendRange(ctx context.Context, t *testing.T, tl *timeline.Log, conv string, from, to int64) {
	t.Helper()
	for s := from; s <= to; s++ {
		if _, _, err := tl.Append(ctx, timeline.Entry{Event: ev(conv, s)}); err != nil {
			t.Fatal(err)
		}
	}
}
