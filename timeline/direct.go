package timeline

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

type directReq struct {
	Seq       uint64   `json:"seq,omitempty"`
	LastFor   string   `json:"last_by_subj,omitempty"`
	NextFor   string   `json:"next_by_subj,omitempty"`
	Batch     int      `json:"batch,omitempty"`
	MultiLast []string `json:"multi_last,omitempty"`
}

// requestTimeout bounds a request whose context has no deadline: an answer
// lost with a failing server must not hold the caller forever.
const requestTimeout = 5 * time.Second

func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, requestTimeout)
}

// direct runs JetStream direct gets over one long-lived reply subscription
// ("<inbox>.<token>"), like nats.go's request mux: a subscription per call
// would cost a 64 Ki-slot channel each (most of the sequencer's garbage).
// Batched and multi-subject answers take several messages, which is why
// nats.go's own request (one reply per call) does not serve.
type direct struct {
	nc   *nats.Conn
	next atomic.Uint64

	mu     sync.Mutex
	prefix string // "<inbox>.", set once subscribed
	calls  map[string]*directCall
}

// directCall collects one request's answers until its last one.
type directCall struct {
	single bool // one message answers it: no end-of-batch marker follows
	msgs   []*nats.Msg
	err    error
	done   chan struct{}
}

func newDirect(nc *nats.Conn) *direct { return &direct{nc: nc, calls: map[string]*directCall{}} }

// subscribe opens the reply subscription on first use; d.mu is held. A
// subscription survives reconnects: nats.go renews it.
func (d *direct) subscribe() error {
	if d.prefix != "" {
		return nil
	}
	prefix := d.nc.NewInbox() + "."
	sub, err := d.nc.Subscribe(prefix+"*", d.deliver)
	if err != nil {
		return err
	}
	// The handler only files messages away: it never falls behind for long,
	// and dropping an answer would fail a read for nothing.
	_ = sub.SetPendingLimits(-1, -1)
	d.prefix = prefix
	return nil
}

func (d *direct) deliver(m *nats.Msg) {
	d.mu.Lock()
	defer d.mu.Unlock()
	token := m.Subject[len(d.prefix):]
	c := d.calls[token]
	if c == nil {
		return // its caller gave up
	}
	found, err := directFound(m)
	if found {
		c.msgs = append(c.msgs, m)
	}
	if err != nil || !found || c.single {
		c.err = err
		delete(d.calls, token)
		close(c.done)
	}
}

// get runs a direct get on stream and returns the messages found, reading a
// batched or multi-subject answer up to its end-of-batch marker.
func (d *direct) get(ctx context.Context, stream string, r directReq) ([]*nats.Msg, error) {
	req, _ := json.Marshal(r)
	c := &directCall{single: r.Batch == 0 && len(r.MultiLast) == 0, done: make(chan struct{})}
	token := strconv.FormatUint(d.next.Add(1), 36)
	d.mu.Lock()
	if err := d.subscribe(); err != nil {
		d.mu.Unlock()
		return nil, fmt.Errorf("direct get %s: subscribe to answers: %w", stream, err)
	}
	d.calls[token] = c
	reply := d.prefix + token
	d.mu.Unlock()
	forget := func() {
		d.mu.Lock()
		delete(d.calls, token)
		d.mu.Unlock()
	}
	if err := d.nc.PublishRequest("$JS.API.DIRECT.GET."+stream, reply, req); err != nil {
		forget()
		return nil, fmt.Errorf("direct get %s: %w", stream, err)
	}
	rctx, cancel := bounded(ctx)
	defer cancel()
	select {
	case <-c.done:
	case <-rctx.Done():
		forget()
		return nil, fmt.Errorf("direct get %s: %w", stream, rctx.Err())
	}
	if c.err != nil {
		return nil, fmt.Errorf("direct get %s: %w", stream, c.err)
	}
	return c.msgs, nil
}

// directFound reports whether a direct-get answer is a message: false for
// the end-of-batch marker and for "not found".
func directFound(m *nats.Msg) (bool, error) {
	switch status := m.Header.Get("Status"); status {
	case "":
		return true, nil
	case "204", "404":
		return false, nil
	default:
		return false, fmt.Errorf("status %s %s", status, m.Header.Get("Description"))
	}
}
