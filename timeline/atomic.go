package timeline

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// maxAtomicBatch is the most messages JetStream takes in one atomic batch
// (the server's default limit).
const maxAtomicBatch = 1000

// publishAtomic publishes msgs (at most maxAtomicBatch, to a stream that
// allows atomic publish) as one JetStream atomic batch: the stream stores
// all of them or none, and only the last, which commits the batch, is
// answered: one round trip for the lot. The caller reads ack.Error.
func publishAtomic(ctx context.Context, nc *nats.Conn, msgs []*nats.Msg) (pubAck, error) {
	id := nuid.Next()
	last := len(msgs) - 1
	for i, m := range msgs[:last] {
		m.Header.Set(hdrBatchID, id)
		m.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
		if err := nc.PublishMsg(m); err != nil {
			return pubAck{}, fmt.Errorf("publish: %w", err)
		}
	}
	m := msgs[last]
	m.Header.Set(hdrBatchID, id)
	m.Header.Set(hdrBatchSeq, strconv.Itoa(last+1))
	m.Header.Set(hdrBatchCommit, "1")
	rctx, cancel := bounded(ctx)
	resp, err := nc.RequestMsgWithContext(rctx, m)
	cancel()
	if err != nil {
		return pubAck{}, fmt.Errorf("commit: %w", err)
	}
	var ack pubAck
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return pubAck{}, fmt.Errorf("commit: decode ack: %w", err)
	}
	return ack, nil
}
