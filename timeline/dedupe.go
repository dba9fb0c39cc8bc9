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
// window. The sequencer looks a whole batch up in one request.
type Dedupe struct {
	js jetstream.JetStream
	dg *direct
}

// NewDedupe returns the dedupe store; the bucket must exist (Ensure).
func NewDedupe(nc *nats.Conn, js jetstream.JetStream) *Dedupe {
	return &Dedupe{js: js, dg: newDirect(nc)}
}

const dedupePrefix = "$KV." + DedupeBucket + "."

// Remember starts storing key's result; the futures report when it is stored.
func (d *Dedupe) Remember(key string, r events.Result) (jetstream.PubAckFuture, error) {
	b, _ := json.Marshal(r)
	f, err := d.js.PublishAsync(dedupePrefix+key, b)
	if err != nil {
		return nil, fmt.Errorf("remember %s: %w", key, err)
	}
	return f, nil
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
