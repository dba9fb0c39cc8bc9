// Package fanout is the projector that carries TIMELINE events to the edges
// holding the connections of the conversations' members.
//
// For each batch of events it finds the members of each event's conversation
// (an in-memory cache, invalidated by membership events), looks up on which
// edges all those users are connected in one Redis round trip for the whole
// batch, and publishes each event once per edge to core NATS
// deliver.<edge>: the event's JSON exactly as TIMELINE holds it (encoded
// once, by the sequencer), with the recipients and the connection the event
// came from in headers. Delivery is at most once per edge: an edge that
// misses one sees a seq jump and fetches the gap from history itself.
package fanout

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/timeline"
)

// ConsumerName is the fanout projector's durable consumer on TIMELINE.
const ConsumerName = "fanout"

// Members answers who is in a conversation.
type Members interface {
	Get(ctx context.Context, conv string) (*events.Conv, error)
	Invalidate(conv string)
}

// Locator answers on which edges users are connected.
type Locator interface {
	Edges(ctx context.Context, users []string) (map[string][]string, error)
}

// Local is an edge in this process (the one-process mode). Its deliveries
// are handed to it directly, the event already decoded, rather than as the
// message it would have got on deliver.<edge>: a publish, a delivery and,
// per batch, a flush of the connection fewer for every event, and no
// headers to build and parse again.
type Local interface {
	ID() string
	// DeliverEvent hands ev to the connections of the users to; data is ev
	// as TIMELINE holds it.
	DeliverEvent(ev *events.Event, data []byte, to []string)
}

// Projector is the fanout projector.
type Projector struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	members Members
	where   *edgeCache
	batch   int
	log     *slog.Logger
	local   Local // nil: every edge is reached through NATS
	feed    *feed // non-nil: events come from Offer, not from TIMELINE (fed.go)

	published prometheus.Counter
	lag       prometheus.Gauge
	batchTime prometheus.Histogram
	dropped   prometheus.Counter
}

// New returns a fanout projector that reads up to batch events at a time.
func New(nc *nats.Conn, js jetstream.JetStream, members Members, where Locator, batch int, log *slog.Logger, reg prometheus.Registerer) *Projector {
	f := promauto.With(reg)
	return &Projector{
		nc: nc, js: js, members: members, where: newEdgeCache(where, whereTTL), batch: max(batch, 1), log: log,
		published: f.NewCounter(prometheus.CounterOpts{Name: "chat_fanout_deliveries_total", Help: "Deliveries fanout made to edges (one per event and edge), through NATS or to the edge in its process."}),
		lag:       f.NewGauge(prometheus.GaugeOpts{Name: "chat_fanout_pending_events", Help: "Events in TIMELINE fanout has not handled yet."}),
		dropped:   f.NewCounter(prometheus.CounterOpts{Name: "chat_fanout_dropped_events_total", Help: "Events offered by the sequencer in this process that fanout dropped (it was that far behind, or could not deliver them): edges fill such holes from history."}),
		batchTime: f.NewHistogram(prometheus.HistogramOpts{Name: "chat_fanout_batch_seconds", Help: "Time to fan out one batch of events.", Buckets: prometheus.ExponentialBuckets(0.0002, 2, 14)}),
	}
}

// DeliverLocally hands the deliveries for e, an edge in this process, to it
// directly. Call it before Run.
func (p *Projector) DeliverLocally(e Local) { p.local = e }

// Run fans out until ctx ends.
func (p *Projector) Run(ctx context.Context) error {
	// Where users are connected comes from memory (where.go): asked of
	// presence at most once a second per user, and kept up to date by the
	// edges' announcements of new connections, which this instance answers
	// while it runs (it holds the lease). What it knew before is forgotten:
	// another instance may have answered meanwhile.
	p.where.clear()
	stop, err := p.where.listen(p.nc)
	if err != nil {
		return fmt.Errorf("fanout: listen for connections: %w", err)
	}
	defer stop()
	if p.feed != nil {
		return p.runFed(ctx)
	}
	// Live delivery is only for what happens from now on: when fanout is
	// first deployed, clients catch up on the past with sync.
	return timeline.RunProjection(ctx, p.js, timeline.Projection{Name: ConsumerName, Start: jetstream.DeliverNewPolicy, Batch: p.batch, AckDelay: ackDelay}, p.log, p.handle)
}

// ackDelay is how long fanout's ack of a batch may wait for the next ones:
// at moderate rates a batch is an event, and an ack per event is a NATS
// message and its handling in the server for each. What is handled and not
// yet acked when fanout stops is delivered again by whoever takes over;
// edges drop a seq they have already (internal/edge/order.go).
const ackDelay = 20 * time.Millisecond

// item is one event of a batch on its way to the edges.
type item struct {
	ev     *events.Event
	data   []byte   // the event as TIMELINE holds it, passed on as it is
	to     []string // recipients
	origin string
}

func (p *Projector) handle(ctx context.Context, b *timeline.Events) error {
	start := time.Now()
	if err := p.deliver(ctx, b.Stored, func(i int) []byte { return b.Msgs[i].Data() }); err != nil {
		return err
	}
	b.Ack()
	p.batchTime.Observe(time.Since(start).Seconds())
	p.lag.Set(float64(b.Pending()))
	return nil
}

// deliver carries evs to the edges of their conversations' members; data(i)
// is evs[i] as TIMELINE holds it.
func (p *Projector) deliver(ctx context.Context, evs []timeline.Stored, data func(i int) []byte) error {
	items := make([]item, 0, len(evs))
	users := map[string]struct{}{}
	for i := range evs {
		ev := &evs[i]
		// A membership event changes who gets this event and what follows:
		// forget the cached members before looking them up.
		if ev.Kind == events.KindMemberJoined || ev.Kind == events.KindMemberLeft {
			p.members.Invalidate(ev.Conv)
		}
		cv, err := p.members.Get(ctx, ev.Conv)
		if events.IsCode(err, events.CodeNotFound) {
			continue // nobody to tell
		}
		if err != nil {
			return fmt.Errorf("members of %s: %w", ev.Conv, err)
		}
		to := make([]string, 0, len(cv.Members)+1)
		for u := range cv.Members {
			to = append(to, u)
		}
		if ev.Kind == events.KindMemberLeft && cv.Members[ev.User] == "" {
			to = append(to, ev.User) // the one who left learns it too
		}
		for _, u := range to {
			users[u] = struct{}{}
		}
		items = append(items, item{ev: &ev.Event, data: data(i), to: to, origin: ev.Origin})
	}
	list := make([]string, 0, len(users))
	for u := range users {
		list = append(list, u)
	}
	edges, err := p.where.Edges(ctx, list)
	if err != nil {
		return err
	}
	n, published := 0, 0 // deliveries, and those of them through NATS
	for _, it := range items {
		byEdge := map[string][]string{}
		for _, u := range it.to {
			for _, e := range edges[u] {
				byEdge[e] = append(byEdge[e], u)
			}
		}
		for edge, to := range byEdge {
			n++
			if p.local != nil && edge == p.local.ID() {
				p.local.DeliverEvent(it.ev, it.data, to)
				continue
			}
			out := nats.NewMsg(timeline.DeliverSubject(edge))
			out.Data = it.data
			out.Header.Set(timeline.HeaderTo, strings.Join(to, " "))
			if it.origin != "" {
				out.Header.Set(timeline.HeaderOrigin, it.origin)
			}
			if err := p.nc.PublishMsg(out); err != nil {
				return fmt.Errorf("deliver to edge %s: %w", edge, err)
			}
			published++
		}
	}
	// One round trip per batch makes sure the deliveries left this process
	// before their events are acked.
	if published > 0 {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := p.nc.FlushWithContext(fctx)
		cancel()
		if err != nil {
			return fmt.Errorf("flush deliveries: %w", err)
		}
	}
	p.published.Add(float64(n))
	return nil
}
