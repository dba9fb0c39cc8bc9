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
// whole batch's results in one atomic batch (the bucket's stream allows
// atomic publish, see Ensure).
type Dedupe struct {
	nc *nats.Conn
	dg *direct
}

// NewDedupe returns the dedupe store; the bucket must exist (Ensure).
func NewDedupe(nc *nats.Conn) *Dedupe {
	return &Dedupe{nc: nc, dg: newDirect(nc)}
}

const dedupePrefix = "$KV." + DedupeBucket + "."

// Remembered is one command's result, for Remember.
type Remembered struct {
	Key    string
	Result events.Result
}

// Remember stores the results of a batch of commands as one atomic batch
// per maxAtomicBatch of them: one round trip, not one per command. Each
// result is still its own key, so Lookup finds any of them; when Remember
// returns nil, all are stored.
func (d *Dedupe) Remember(ctx context.Context, rs []Remembered) error {
	for len(rs) > 0 {
		n := min(len(rs), maxAtomicBatch)
		msgs := make([]*nats.Msg, n)
		for i, r := range rs[:n] {
			msgs[i] = nats.NewMsg(dedupePrefix + r.Key)
			msgs[i].Data, _ = json.Marshal(r.Result)
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
	msgs, err := d.dg.get(ctx, "KV_"+DedupeBucket, directReq{MultiLast: subjects})
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
