package timeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/seqchat/seqchat/events"
)

// Log appends to and reads from TIMELINE.
type Log struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	dg   *direct
	repl replication

	// pmu serializes this Log's appends; next is the stream sequence the
	// next one is predicted to get (0: not known), for AppendPipelined.
	pmu    sync.Mutex
	next   uint64
	noFast bool // TIMELINE takes no fast batches (an older server): never pipeline
	fast   fastReplies
}

// New returns a Log over an open connection; the streams must exist (Ensure).
func New(nc *nats.Conn, js jetstream.JetStream) *Log {
	return &Log{nc: nc, js: js, dg: newDirect(nc)}
}

// Position is where a conversation's timeline stands: its last seq and the
// stream sequence that event has in TIMELINE.
type Position struct {
	Seq       int64
	StreamSeq uint64
}

// Stored is an event with its place in TIMELINE.
type Stored struct {
	events.Event
	StreamSeq uint64
	Origin    string
}

const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
	hdrExpectSubj  = "Nats-Expected-Last-Subject-Sequence"
)

// lostRace reports whether JetStream refused an append because its
// expected last subject sequence did not hold: another writer got there
// first. A single replica answers JSErrCodeStreamWrongLastSequence (10071);
// a replicated stream answers JSErrCodeStreamWrongLastSequenceConstant
// (10164) when the check fails before the Raft proposal, because an append
// to the same conversation is still being proposed, and 10071 after it.
func lostRace(code jetstream.ErrorCode) bool {
	return code == jetstream.JSErrCodeStreamWrongLastSequence || code == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// Entry is one event to append. Expect, when set, is the stream sequence the
// conversation's last event must have (0: the conversation must be empty).
type Entry struct {
	Event  *events.Event
	MsgID  string
	Origin string
	Expect *uint64
}

func (e *Entry) msg() *nats.Msg {
	m := nats.NewMsg(TimelineSubject(e.Event.Conv))
	m.Data = e.Event.Encode()
	if e.MsgID != "" {
		m.Header.Set(jetstream.MsgIDHeader, e.MsgID)
	}
	if e.Origin != "" {
		m.Header.Set(HeaderOrigin, e.Origin)
	}
	if e.Expect != nil {
		m.Header.Set(hdrExpectSubj, strconv.FormatUint(*e.Expect, 10))
	}
	return m
}

type pubAck struct {
	Stream    string `json:"stream"`
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate,omitempty"`
	Count     int    `json:"count,omitempty"`
	Error     *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error,omitempty"`
}

// AppendBatch appends entries atomically: all are stored, with consecutive
// stream sequences, or none is. It returns the stream sequence of the first.
// Any failure (a conflict, a duplicate message id) fails the whole batch; the
// caller then falls back to appending one entry at a time.
//
// It costs one round trip (one Raft proposal on a cluster) for the whole
// batch, but JetStream stages an atomic batch in a fresh, fsynced file store
// when the stream is a single replica on file storage: there, pipelined
// AppendAsync calls are an order of magnitude faster.
func (l *Log) AppendBatch(ctx context.Context, entries []Entry) (uint64, error) {
	if len(entries) == 0 {
		return 0, nil
	}
	msgs := make([]*nats.Msg, len(entries))
	for i := range entries {
		msgs[i] = entries[i].msg()
	}
	last := len(entries) - 1
	l.moved()
	ack, err := publishAtomic(ctx, l.nc, msgs)
	if err != nil {
		return 0, fmt.Errorf("append batch to %s: %w", TimelineStream, err)
	}
	if ack.Error != nil {
		if lostRace(jetstream.ErrorCode(ack.Error.ErrCode)) {
			return 0, ErrConflict
		}
		return 0, fmt.Errorf("commit batch to %s: %s (%d)", TimelineStream, ack.Error.Description, ack.Error.ErrCode)
	}
	if ack.Count != len(entries) {
		return 0, fmt.Errorf("commit batch to %s: stored %d of %d", TimelineStream, ack.Count, len(entries))
	}
	return ack.Seq - uint64(last), nil
}

// AppendAsync starts appending one entry; Settle reads the outcome.
func (l *Log) AppendAsync(e Entry) (jetstream.PubAckFuture, error) {
	// Under the lock, so as not to land inside a pipelined batch; and it
	// moves the stream where the prediction did not expect it.
	l.pmu.Lock()
	f, err := l.js.PublishMsgAsync(e.msg())
	l.next = 0
	l.pmu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("append to %s: %w", TimelineSubject(e.Event.Conv), err)
	}
	return f, nil
}

// Settle waits for an AppendAsync and reports it as Append does.
func Settle(ctx context.Context, f jetstream.PubAckFuture) (streamSeq uint64, dup bool, err error) {
	select {
	case ack := <-f.Ok():
		return ack.Sequence, ack.Duplicate, nil
	case err := <-f.Err():
		return 0, false, appendErr(f.Msg().Subject, err)
	case <-ctx.Done():
		return 0, false, ctx.Err()
	}
}

func appendErr(subj string, err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && lostRace(apiErr.ErrorCode) {
		return ErrConflict
	}
	return fmt.Errorf("append to %s: %w", subj, err)
}

// Append appends one entry. When its message id was seen within the
// duplicate window, nothing is appended and dup is true: streamSeq is then the
// original's. ErrConflict means the Expect check failed.
func (l *Log) Append(ctx context.Context, e Entry) (streamSeq uint64, dup bool, err error) {
	f, err := l.AppendAsync(e)
	if err != nil {
		return 0, false, err
	}
	return Settle(ctx, f)
}

// Get returns the event stored at streamSeq, which an append's ack named.
func (l *Log) Get(ctx context.Context, streamSeq uint64) (Stored, error) {
	msgs, err := l.directOrLeader(ctx, directReq{Seq: streamSeq})
	if err != nil {
		return Stored{}, err
	}
	if len(msgs) == 0 {
		return Stored{}, fmt.Errorf("get %s #%d: %w", TimelineStream, streamSeq, jetstream.ErrMsgNotFound)
	}
	return msgs[0], nil
}

// ReadFrom returns up to n events of every conversation from stream
// sequence from on, in stream order, and the stream sequence of the last
// message it read (0: none); an event that does not decode is skipped, as
// a projection's consumer skips it. It reads what this server holds: for a
// projection in the process of TIMELINE's only writer (fed.go).
func (l *Log) ReadFrom(ctx context.Context, from uint64, n int) (evs []Stored, through uint64, err error) {
	msgs, err := l.dg.get(ctx, TimelineStream, directReq{Seq: max(from, 1), Batch: max(n, 1)})
	if err != nil {
		return nil, 0, err
	}
	evs = make([]Stored, 0, len(msgs))
	for _, m := range msgs {
		seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("direct get %s: bad sequence header: %w", TimelineStream, err)
		}
		through = seq
		if s, err := decodeStored(m); err == nil {
			evs = append(evs, s)
		}
	}
	return evs, through, nil
}

// Last returns conv's position; a conversation with no event is at zero.
// It shows every acked append: on a replicated stream it asks the leader.
func (l *Log) Last(ctx context.Context, conv string) (Position, error) {
	r := directReq{LastFor: TimelineSubject(conv)}
	var msgs []Stored
	var err error
	if l.replicated(ctx) {
		msgs, err = l.leader(ctx, r)
	} else {
		msgs, err = l.direct(ctx, r)
	}
	if err != nil || len(msgs) == 0 {
		return Position{}, err
	}
	return Position{Seq: msgs[0].Seq, StreamSeq: msgs[0].StreamSeq}, nil
}

// Read returns up to limit events of conv with seq > after, ascending, up
// to its head when Read began. hint, when not zero, is a stream sequence at
// or below the one of seq after+1 (the caller may know it from a
// projection); it saves the search.
//
// The head comes from Last, so the events up to it are known to exist: a
// direct answer short of them came from a follower still applying them, and
// the rest is read from the leader.
func (l *Log) Read(ctx context.Context, conv string, after int64, limit int, hint uint64) ([]Stored, error) {
	if limit <= 0 {
		return nil, nil
	}
	last, err := l.Last(ctx, conv)
	if err != nil {
		return nil, err
	}
	start, err := l.locate(ctx, conv, after+1, hint, last)
	if err != nil || start == 0 {
		return nil, err
	}
	want := int(min(int64(limit), last.Seq-after))
	subj := TimelineSubject(conv)
	var out []Stored
	for len(out) < want {
		n := min(want-len(out), 1000)
		msgs, err := l.direct(ctx, directReq{Seq: start, NextFor: subj, Batch: n})
		if err != nil {
			return nil, err
		}
		if len(msgs) == 0 && l.replicated(ctx) {
			msgs, err = l.leader(ctx, directReq{Seq: start, NextFor: subj})
			if err != nil {
				return nil, err
			}
		}
		if len(msgs) == 0 {
			break // truncated since Last
		}
		for _, m := range msgs {
			if m.Seq != after+int64(len(out))+1 {
				return nil, fmt.Errorf("read %s: found seq %d where %d belongs", conv, m.Seq, after+int64(len(out))+1)
			}
			out = append(out, m)
		}
		start = msgs[len(msgs)-1].StreamSeq + 1
	}
	return out, nil
}

// locate finds the stream sequence of conv's event seq, or 0 if it has none,
// last being conv's position. Seqs grow with stream sequences, so a binary
// search over the stream with "next message of this subject" probes finds
// it in O(log n) lookups.
func (l *Log) locate(ctx context.Context, conv string, seq int64, lo uint64, last Position) (uint64, error) {
	if last.Seq < seq || seq < 1 {
		return 0, nil
	}
	if last.Seq == seq {
		return last.StreamSeq, nil
	}
	lo = max(lo, 1)
	hi := last.StreamSeq
	subj := TimelineSubject(conv)
	probe := lo // the first probe at the hint usually hits
	for lo <= hi {
		// Every probe is at or below the head: an event follows it.
		msgs, err := l.directOrLeader(ctx, directReq{Seq: probe, NextFor: subj})
		if err != nil {
			return 0, err
		}
		if len(msgs) == 0 {
			return 0, fmt.Errorf("locate %s seq %d: no event at or after #%d", conv, seq, probe)
		}
		m := msgs[0]
		switch {
		case m.Seq == seq:
			return m.StreamSeq, nil
		case m.Seq < seq:
			lo = m.StreamSeq + 1
		default:
			hi = probe - 1
		}
		probe = lo + (hi-lo)/2
	}
	return 0, fmt.Errorf("locate %s seq %d: not found (timeline truncated?)", conv, seq)
}

// direct runs a JetStream direct get on TIMELINE.
func (l *Log) direct(ctx context.Context, r directReq) ([]Stored, error) {
	msgs, err := l.dg.get(ctx, TimelineStream, r)
	if err != nil {
		return nil, err
	}
	out := make([]Stored, 0, len(msgs))
	for _, m := range msgs {
		s, err := decodeStored(m)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// decodeStored parses a TIMELINE message from a direct get.
func decodeStored(m *nats.Msg) (Stored, error) {
	seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil {
		return Stored{}, fmt.Errorf("direct get %s: bad sequence header: %w", TimelineStream, err)
	}
	ev, err := events.DecodeEvent(m.Data)
	if err != nil {
		return Stored{}, err
	}
	return Stored{Event: ev, StreamSeq: seq, Origin: m.Header.Get(HeaderOrigin)}, nil
}
