package timeline

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/seqchat/seqchat/events"
)

// A direct get on a replicated stream is answered by any replica that has
// caught up (a follower joins the direct-get queue group once it is within
// 90% of the leader, and a requester's own server is preferred), so it can
// miss an append the leader has already acked. The stream message API
// ($JS.API.STREAM.MSG.GET) is answered by the stream leader alone, which
// acks an append only once it has stored it: that is the read that shows
// every acked append (nats-server 2.15 offers no stronger option on direct
// gets). It costs more (every server parses the request, the leader answers
// in JSON), so it is used only where a direct answer cannot be trusted: for
// a conversation's head, and after a direct answer came up short of it.

// replicasRecheck is how long the stream's replica count is trusted: a
// stream scaled up while we run is read through its leader after this long.
const replicasRecheck = 30 * time.Second

// replication remembers whether TIMELINE is replicated.
type replication struct {
	replicas  atomic.Int64 // 0 until known
	nextCheck atomic.Int64 // unix nanos
}

// replicated reports whether TIMELINE has more than one replica: whether a
// direct get may come from a follower. Unknown counts as replicated: the
// leader's answer is right either way. A server outside any cluster cannot
// hold more than one replica, so one-process mode never asks.
func (l *Log) replicated(ctx context.Context) bool {
	if l.nc.ConnectedClusterName() == "" {
		return false // a lone server (one-process mode) holds one replica: no look-up
	}
	now := time.Now().UnixNano()
	r, next := l.repl.replicas.Load(), l.repl.nextCheck.Load()
	if r != 0 && (now < next || !l.repl.nextCheck.CompareAndSwap(next, now+int64(replicasRecheck))) {
		return r != 1 // fresh, or another read is rechecking it
	}
	st, err := l.js.Stream(ctx, TimelineStream)
	if err != nil {
		return r != 1 // the last known count, or unknown
	}
	r = int64(max(st.CachedInfo().Config.Replicas, 1))
	l.repl.replicas.Store(r)
	l.repl.nextCheck.Store(time.Now().UnixNano() + int64(replicasRecheck))
	return r != 1
}

type msgGetResponse struct {
	Message *struct {
		Subject  string `json:"subject"`
		Sequence uint64 `json:"seq"`
		Header   []byte `json:"hdrs,omitempty"`
		Data     []byte `json:"data,omitempty"`
	} `json:"message,omitempty"`
	Error *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error,omitempty"`
}

// leader reads one message of TIMELINE from the stream leader; none found
// is an empty answer, as from direct. r takes no batch.
func (l *Log) leader(ctx context.Context, r directReq) ([]Stored, error) {
	req, _ := json.Marshal(r)
	rctx, cancel := bounded(ctx)
	defer cancel()
	m, err := l.nc.RequestWithContext(rctx, "$JS.API.STREAM.MSG.GET."+TimelineStream, req)
	if err != nil {
		return nil, fmt.Errorf("get from %s leader: %w", TimelineStream, err)
	}
	var resp msgGetResponse
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return nil, fmt.Errorf("get from %s leader: decode: %w", TimelineStream, err)
	}
	if resp.Error != nil {
		if jetstream.ErrorCode(resp.Error.ErrCode) == jetstream.JSErrCodeMessageNotFound {
			return nil, nil
		}
		return nil, fmt.Errorf("get from %s leader: %s (%d)", TimelineStream, resp.Error.Description, resp.Error.ErrCode)
	}
	if resp.Message == nil {
		return nil, fmt.Errorf("get from %s leader: answer without a message", TimelineStream)
	}
	var origin string
	if len(resp.Message.Header) > 0 {
		h, err := nats.DecodeHeadersMsg(resp.Message.Header)
		if err != nil {
			return nil, fmt.Errorf("get from %s leader: headers of #%d: %w", TimelineStream, resp.Message.Sequence, err)
		}
		origin = h.Get(HeaderOrigin)
	}
	ev, err := events.DecodeEvent(resp.Message.Data)
	if err != nil {
		return nil, fmt.Errorf("get from %s leader: #%s: %w", TimelineStream, strconv.FormatUint(resp.Message.Sequence, 10), err)
	}
	return []Stored{{Event: ev, StreamSeq: resp.Message.Sequence, Origin: origin}}, nil
}

// directOrLeader runs a single-message direct get and, when it finds
// nothing on a replicated stream, asks the leader: the caller knows the
// message exists (it was acked, or the head is past it), and a follower
// that has it has the same bytes as the leader.
func (l *Log) directOrLeader(ctx context.Context, r directReq) ([]Stored, error) {
	msgs, err := l.direct(ctx, r)
	if err != nil || len(msgs) > 0 || !l.replicated(ctx) {
		return msgs, err
	}
	return l.leader(ctx, r)
}
