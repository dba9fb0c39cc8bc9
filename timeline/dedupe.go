package timeline

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/seqchat/seqchat/events"
)

// Dedupe remembers each command's result for the dedupe TTL (the KV bucket
// DEDUPE), for resends that come after JetStream's in-memory duplicate
// window. The sequencer looks a whole batch up in one request and stores a
// whole batch's results either pipelined (Remember) or in one atomic batch
// (RememberBatch; the bucket's stream allows atomic publish, see Ensure).
type Dedupe struct {
	nc *nats.Conn
	js jetstream.JetStream
	dg *direct
}

// NewDedupe returns the dedupe store; the bucket must exist (Ensure).
func NewDedupe(nc *nats.Conn, js jetstream.JetStream) *Dedupe {
	return &Dedupe{nc: nc, js: js, dg: newDirect(nc)}
}

const dedupePrefix = "$KV." + DedupeBucket + "."

// Remembered is one command's result, for Remember.
type Remembered struct {
	Key    string
	Result events.Result
}

// Remember stores the results of a batch of commands on a bucket of one
// replica; when it returns nil, all are stored. It writes them as plain
// publishes and asks a PubAck for the last one only: one server takes one
// connection's messages to a stream in the order they were sent, so the
// last one stored means every one before it was stored too. That holds
// only while the connection stays with one server process, so should the
// connection have reconnected meanwhile (messages in flight are lost then),
// it writes them all again, each acked; and only on a server of no cluster,
// where no route between servers could lose some of them unseen (on a
// cluster each is acked). A bucket of several replicas takes RememberBatch:
// there a new stream leader may not have had the earlier messages.
func (d *Dedupe) Remember(ctx context.Context, rs []Remembered) error {
	if len(rs) == 0 {
		return nil
	}
	if d.nc.ConnectedClusterName() != "" {
		return d.rememberAcked(ctx, rs)
	}
	reconnects := d.nc.Stats().Reconnects
	last := len(rs) - 1
	for _, r := range rs[:last] {
		if err := d.nc.Publish(dedupePrefix+r.Key, r.Result.AppendJSON(nil)); err != nil {
			return fmt.Errorf("remember %s: %w", r.Key, err)
		}
	}
	if err := d.rememberAcked(ctx, rs[last:]); err != nil {
		return err
	}
	if d.nc.Stats().Reconnects != reconnects {
		return d.rememberAcked(ctx, rs)
	}
	return nil
}

// rememberAcked stores rs with one pipelined write and PubAck each.
func (d *Dedupe) rememberAcked(ctx context.Context, rs []Remembered) error {
	futures := make([]jetstream.PubAckFuture, 0, len(rs))
	for _, r := range rs {
		b := r.Result.AppendJSON(nil)
		f, err := d.js.PublishAsync(dedupePrefix+r.Key, b)
		if err != nil {
			return fmt.Errorf("remember %s: %w", r.Key, err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("remember %s: %w", strings.TrimPrefix(f.Msg().Subject, dedupePrefix), err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// RememberBatch stores the results of a batch of commands as one atomic
// batch per maxAtomicBatch of them: one write and one PubAck, not one per
// command (one Raft proposal on a cluster). Each result is still its own
// key, so Lookup finds any of them; when RememberBatch returns nil, all are
// stored. On a single file-backed replica JetStream stages an atomic batch
// in a synced file, which costs more than Remember's pipelined writes.
func (d *Dedupe) RememberBatch(ctx context.Context, rs []Remembered) error {
	for len(rs) > 0 {
		n := min(len(rs), maxAtomicBatch)
		msgs := make([]*nats.Msg, n)
		for i, r := range rs[:n] {
			msgs[i] = nats.NewMsg(dedupePrefix + r.Key)
			msgs[i].Data = r.Result.AppendJSON(nil)
		}
		ack, err := publishAtomic(ctx, d.nc, msgs)
		if err != nil {
			return fmt.Errorf("remember %d command results: %w", n, err)
		}
		if ack.Error != nil {
			return fmt.Errorf("remember %d command results: %s (%d)", n, ack.Error.Description, ack.Error.ErrCode)
		}
		if ack.Count != n {
			return fmt.Errorf("remember %d command results: stored %d", n, ack.Count)
		}
		rs = rs[n:]
	}
	return nil
}

// Keys returns how many command results the bucket holds: what its
// memory in NATS grows with (docs/operations.md, "Memory the NATS servers
// need").
func (d *Dedupe) Keys(ctx context.Context) (uint64, error) {
	st, err := d.js.Stream(ctx, "KV_"+DedupeBucket)
	if err != nil {
		return 0, fmt.Errorf("dedupe bucket: %w", err)
	}
	return st.CachedInfo().State.Msgs, nil
}

// Lookup returns the remembered results of those keys that have one, in one
// round trip.
func (d *Dedupe) Lookup(ctx context.Context, keys []string) (map[string]events.Result, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	subjects := make([]string, len(keys))
	for i, k := range keys {
		subjects[i] = dedupePrefix + k
	}
	// One key (most batches at moderate rates) is a plain direct get: one
	// answer, where a multi-subject get adds an end-of-batch message.
	req := directReq{MultiLast: subjects}
	if len(subjects) == 1 {
		req = directReq{LastFor: subjects[0]}
	}
	msgs, err := d.dg.get(ctx, "KV_"+DedupeBucket, req)
	if err != nil {
		return nil, err
	}
	out := make(map[string]events.Result, len(msgs))
	for _, m := range msgs {
		var r events.Result
		if json.Unmarshal(m.Data, &r) != nil || r.Seq == 0 {
			continue // a delete marker or junk: not a result
		}
		out[strings.TrimPrefix(m.Header.Get(jetstream.SubjectHeader), dedupePrefix)] = r
	}
	return out, nil
}
