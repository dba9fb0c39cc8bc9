package timeline

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// Pipelined appends: a whole batch, several events of one conversation
// included, in one round trip, with neither rounds (one round trip per event
// of the busiest conversation) nor an atomic batch (which a single
// file-backed replica stages in a synced file store of its own, created and
// removed per batch).
//
// It rests on two things. First, the Log predicts the stream sequence each
// event will get: this process publishes every append of its own through
// one connection under one lock, so nothing of its own comes between, and
// every message says which stream sequence must be the last before it
// (Nats-Expected-Last-Sequence). A message that finds anything else there
// (another process's append, an earlier message of the batch missing) is
// refused. Second, the batch goes as a JetStream fast batch in "gap: fail"
// mode: once one message is refused, the server stores none after it. So
// what is stored is always a prefix of the batch, each at the stream
// sequence predicted for it, and an event of a conversation that follows
// another of the batch needs no check of its own: its predecessor sits
// right where the prediction put it. The first event of each conversation
// still carries its Expect, checked against what the caller read.
//
// The one message a fast batch skips without stopping is a duplicate
// (its Nats-Msg-Id seen within the duplicate window); the message after it
// then finds the stream short of its prediction and is refused, so a
// duplicate ends the stored prefix too.
//
// That last step needs the Log to be TIMELINE's only writer: were another
// process to append its own copy of the very command the batch skipped,
// into the very slot it left, the next message would find everything as
// predicted, and a conversation whose position the skipped message was to
// check would go on from a position nobody checked. (Naming the message id
// that must be last, Nats-Expected-Last-Msg-Id, would not tell that copy
// from the skipped message either: they share their id.) So only a
// sequencer that is the only writer (the one of a process with the embedded
// JetStream) pipelines; any other goes by atomic batches and rounds.

// maxPipelined is the most messages one fast batch carries; a longer
// append goes as several, one after the other.
const maxPipelined = 1000

// fastFlow is the flow-control window asked of the server: how many
// messages it may take before it acknowledges progress. A batch of ours is
// sent whole at once, so a large window keeps the acknowledgements few.
const fastFlow = maxPipelined

const hdrExpectStream = "Nats-Expected-Last-Sequence"

// fastReplies routes the server's answers to fast batches by batch id, over
// one long-lived subscription.
type fastReplies struct {
	mu     sync.Mutex
	prefix string                 // "<inbox>.", set once subscribed
	calls  map[string]chan pubAck // each waits for the PubAck that ends its batch
}

// AppendPipelined appends entries in order as fast batches (at most
// maxPipelined each) and reports how many of them, from the first, are
// stored, and the stream sequence of the first. Where TIMELINE takes no
// fast batches (Settings.FastBatches, a server of NATS 2.14 or newer) it
// stores none. The rest are not stored:
// the caller appends them another way (AppendAsync with Expect), where a
// conflict or a duplicate is told apart. err is set only when not even the
// prediction could be made or the outcome is unknown (the answer did not
// come); stored then still counts what is known stored.
//
// The first entry of each conversation carries Expect; the others need
// none, the prediction covers them. Every entry needs a MsgID (a resend
// must be found a duplicate), and the Log must be TIMELINE's only writer.
func (l *Log) AppendPipelined(ctx context.Context, entries []Entry) (stored int, first uint64, err error) {
	for i := range entries {
		if entries[i].MsgID == "" {
			return 0, 0, fmt.Errorf("append to %s: a pipelined entry needs a message id", TimelineStream)
		}
	}
	for stored < len(entries) {
		n := min(len(entries)-stored, maxPipelined)
		got, base, err := l.appendFast(ctx, entries[stored:stored+n])
		if stored == 0 {
			first = base
		}
		stored += got
		if err != nil || got < n {
			return stored, first, err
		}
	}
	return stored, first, nil
}

// appendFast sends one fast batch and waits for its PubAck.
func (l *Log) appendFast(ctx context.Context, entries []Entry) (stored int, base uint64, err error) {
	l.pmu.Lock()
	if l.next == 0 && !l.noFast {
		st, err := l.js.Stream(ctx, TimelineStream)
		if err != nil {
			l.pmu.Unlock()
			return 0, 0, fmt.Errorf("append to %s: read its last sequence: %w", TimelineStream, err)
		}
		l.next = st.CachedInfo().State.LastSeq + 1
		l.noFast = !st.CachedInfo().Config.AllowBatchPublish
	}
	if l.noFast {
		l.pmu.Unlock()
		return 0, 0, nil // all of it goes the other way
	}
	base = l.next
	done, id, err := l.fast.open(l.nc)
	if err != nil {
		l.pmu.Unlock()
		return 0, base, fmt.Errorf("append to %s: %w", TimelineStream, err)
	}
	defer l.fast.close(id)
	last := len(entries) - 1
	for i := range entries {
		m := entries[i].msg()
		m.Header.Set(hdrExpectStream, strconv.FormatUint(base+uint64(i)-1, 10))
		op := 1 // append
		switch {
		case i == last:
			op = 2 // commit (a batch of one starts and commits at once)
		case i == 0:
			op = 0 // start
		}
		m.Reply = l.fast.prefix + id + "." + strconv.Itoa(fastFlow) + ".fail." + strconv.Itoa(i+1) + "." + strconv.Itoa(op) + ".$FI"
		if err := l.nc.PublishMsg(m); err != nil {
			// Nothing after this one was sent; what was has no commit
			// and is abandoned by the server (stored or not): unknown.
			l.next = 0
			l.pmu.Unlock()
			return 0, base, fmt.Errorf("append to %s: %w", TimelineStream, err)
		}
	}
	// The next batch, whoever sends it, goes right behind this one should
	// all of it be stored; if not, that one is refused at its first message
	// and the prediction is read again.
	l.next = base + uint64(len(entries))
	l.pmu.Unlock()

	rctx, cancel := bounded(ctx)
	defer cancel()
	select {
	case ack := <-done:
		if ack.Error != nil || ack.Seq < base {
			// Refused at the first message (a conflict, a duplicate: ack.Seq
			// is then the original's), or nothing stored.
			l.mispredicted(base + uint64(len(entries)))
			return 0, base, nil
		}
		stored = int(min(ack.Seq-base+1, uint64(len(entries))))
		if stored < len(entries) {
			l.mispredicted(base + uint64(len(entries)))
		}
		return stored, base, nil
	case <-rctx.Done():
		l.mispredicted(base + uint64(len(entries)))
		return 0, base, fmt.Errorf("append to %s: no answer to a batch of %d: %w", TimelineStream, len(entries), rctx.Err())
	}
}

// mispredicted forgets the prediction made after a batch whose end was
// to be at end, unless a later batch already moved it on (that one will
// find out for itself).
func (l *Log) mispredicted(end uint64) {
	l.pmu.Lock()
	if l.next == end {
		l.next = 0
	}
	l.pmu.Unlock()
}

// moved forgets the prediction: an append went around the pipeline.
func (l *Log) moved() {
	l.pmu.Lock()
	l.next = 0
	l.pmu.Unlock()
}

// open registers a new batch and returns its id; the subscription is made
// on first use.
func (f *fastReplies) open(nc *nats.Conn) (chan pubAck, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.prefix == "" {
		prefix := nc.NewInbox() + "."
		sub, err := nc.Subscribe(prefix+">", f.deliver)
		if err != nil {
			return nil, "", fmt.Errorf("subscribe to batch answers: %w", err)
		}
		_ = sub.SetPendingLimits(-1, -1)
		f.prefix = prefix
		f.calls = map[string]chan pubAck{}
	}
	id := nuid.Next()
	c := make(chan pubAck, 1)
	f.calls[id] = c
	return c, id, nil
}

func (f *fastReplies) close(id string) {
	f.mu.Lock()
	delete(f.calls, id)
	f.mu.Unlock()
}

// deliver files the answer that ends a batch: a PubAck (success, or the
// error that ended it). Flow-control acks, gap and error reports come
// before it and are informational ("type" set); answers to messages sent
// after a batch ended are for no open batch and dropped.
func (f *fastReplies) deliver(m *nats.Msg) {
	rest := strings.TrimPrefix(m.Subject, f.prefix)
	id, _, _ := strings.Cut(rest, ".")
	var a struct {
		Type string `json:"type"`
		pubAck
	}
	if json.Unmarshal(m.Data, &a) != nil || a.Type != "" {
		return
	}
	f.mu.Lock()
	c := f.calls[id]
	delete(f.calls, id)
	f.mu.Unlock()
	if c != nil {
		c <- a.pubAck
	}
}
