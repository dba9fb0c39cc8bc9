package timeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Fed projections. In the process of TIMELINE's only writer (the
// one-process mode, config.Config.Pipelined), the sequencer hands each
// batch of events it appends to the projections of the same process, with
// their stream sequences, rather than have each read them back from
// TIMELINE through its durable consumer: a delivery, its decoding and,
// per batch, an ack and a pull fewer for every event and projection.
//
// The guarantee stays the consumer's: a projection applies every event of
// TIMELINE, in stream order, at least once. It keeps its position (the
// stream sequence of the last event applied) and applies only the event
// right after it. What the feed does not bring in order (two partitions'
// batches crossing, a batch dropped because the projection is behind, an
// event nobody offered) is a gap: events past it wait, up to gapWait, and
// then the projection reads the gap from TIMELINE itself (Log.ReadFrom),
// as it does when it starts and when the feed has been quiet for a while.
// An event that comes twice (read, then offered) is past the position and
// dropped.
//
// The position is kept in the bucket PROJECTIONS at most every
// cursorEvery and when the projection stops; after a crash the events
// since are applied again, which projections take as they take a
// redelivery (they are idempotent). RunProjection starts a consumer after
// the cursor when the process runs the projection from TIMELINE again.

// feedBatches is how many offered batches wait for a projection before
// further ones are dropped (and read from TIMELINE instead): the sequencer
// never waits on a projection, and a projection that far behind reads
// TIMELINE as well as it would through a consumer.
const feedBatches = 1024

const (
	// gapWait is how long events past a gap wait for the feed to fill it
	// before the projection reads it from TIMELINE: long enough for two
	// partitions' batches that crossed, short against the projections'
	// linger.
	gapWait = 50 * time.Millisecond
	// quietProbe is how often a projection whose feed brings nothing looks
	// at TIMELINE for events it was not offered.
	quietProbe = 500 * time.Millisecond
	// cursorEvery is how often the position is written while it moves.
	cursorEvery = time.Second
)

// Feed carries the events this process's sequencer appends to one
// projection in the same process.
type Feed struct {
	batches chan []Stored
	tl      *Log          // for what the feed did not bring, made on first use
	applied atomic.Uint64 // the running projection's position (Applied)
	dropped prometheus.Counter
	read    prometheus.Counter
}

// NewFeed returns an empty feed for the projection name, its metrics
// registered with reg.
func NewFeed(name string, reg prometheus.Registerer) *Feed {
	f := promauto.With(reg)
	label := prometheus.Labels{"projection": name}
	return &Feed{
		batches: make(chan []Stored, feedBatches),
		dropped: f.NewCounter(prometheus.CounterOpts{Name: "chat_projection_feed_dropped_events_total", ConstLabels: label, Help: "Events the sequencer offered a projection in its process that the feed dropped, the projection being that far behind; it reads them from TIMELINE."}),
		read:    f.NewCounter(prometheus.CounterOpts{Name: "chat_projection_timeline_read_events_total", ConstLabels: label, Help: "Events a projection fed in process read from TIMELINE itself: on start, and what its feed did not bring in order."}),
	}
}

// Applied is the stream sequence up to which the projection has applied
// TIMELINE, as its run in this process last said (0 before it ran): what
// a consumer's ack floor tells of a projection run from TIMELINE (the
// offline push waits on the unread projection's).
func (f *Feed) Applied() uint64 { return f.applied.Load() }

// Offer hands the feed events just appended to TIMELINE, StreamSeq set,
// in any order; the slice may be shared with other feeds and is only read.
// It never blocks: when the projection is feedBatches batches behind, the
// events are dropped and the projection reads them from TIMELINE.
func (f *Feed) Offer(evs []Stored) {
	if len(evs) == 0 {
		return
	}
	select {
	case f.batches <- evs:
	default:
		f.dropped.Add(float64(len(evs)))
	}
}

// RunFed runs projection p from p.Feed until ctx ends (RunProjection does
// so for a projection with a Feed): h gets the events of
// TIMELINE in stream order, in batches of up to p.Batch, waiting up to
// p.Linger for a batch to fill, as RunProjection hands them from the
// consumer (but with no messages: Msgs is empty and Ack does nothing, the
// runner keeps the position). It removes
// the projection's durable consumer, which would only hold back what
// TIMELINE keeps for nobody.
func RunFed(ctx context.Context, js jetstream.JetStream, p Projection, log *slog.Logger, h EventHandler) error {
	feed := p.Feed
	if feed.tl == nil {
		// One Log for the feed's runs (one at a time): each holds a
		// subscription for its reads.
		feed.tl = New(js.Conn(), js)
	}
	log = log.With("projection", p.Name)
	r := &fedRun{p: p, feed: feed, log: log, h: h, tl: feed.tl, cursors: newCursors(js)}
	pos, err := r.start(ctx, js)
	if err != nil {
		return err
	}
	r.pos, r.saved = pos, pos
	r.held.front = pos + 1
	feed.applied.Store(pos)
	defer func() {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := r.save(wctx); err != nil {
			log.Warn("keep the projection's position", "err", err)
		}
	}()
	return r.run(ctx)
}

// fedRun is one run of a fed projection.
type fedRun struct {
	p       Projection
	feed    *Feed
	log     *slog.Logger
	h       EventHandler
	tl      *Log
	cursors cursors

	pos       uint64    // last stream sequence applied
	saved     uint64    // pos as last written to the bucket
	savedAt   time.Time // when
	held      held      // offered events past pos, not applied yet
	head      uint64    // highest stream sequence seen
	gapSince  time.Time // when events began to wait past a gap (zero: none)
	stalled   bool      // the last read of a gap found nothing
	lastOffer time.Time // when the feed last brought something
	b         Events
}

// start finds where the projection is: past its cursor, past what its
// consumer acked, or, for one that never ran, where p.Start says.
func (r *fedRun) start(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	pos, err := r.cursors.get(ctx, r.p.Name)
	if err != nil {
		return 0, err
	}
	cons, err := js.Consumer(ctx, TimelineStream, r.p.Name)
	switch {
	case err == nil:
		info, err := cons.Info(ctx)
		if err != nil {
			return 0, fmt.Errorf("projection %s: %w", r.p.Name, err)
		}
		pos = max(pos, info.AckFloor.Stream)
		if err := js.DeleteConsumer(ctx, TimelineStream, r.p.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return 0, fmt.Errorf("projection %s: remove its consumer: %w", r.p.Name, err)
		}
		// Written before anything else: the consumer that held the
		// position is gone.
		if err := r.cursors.put(ctx, r.p.Name, pos); err != nil {
			return 0, err
		}
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return 0, fmt.Errorf("projection %s: %w", r.p.Name, err)
	case pos == 0 && r.p.Start == jetstream.DeliverNewPolicy:
		st, err := js.Stream(ctx, TimelineStream)
		if err != nil {
			return 0, fmt.Errorf("projection %s: %w", r.p.Name, err)
		}
		pos = st.CachedInfo().State.LastSeq
	}
	return pos, nil
}

func (r *fedRun) run(ctx context.Context) error {
	gap := time.NewTimer(time.Hour)
	gap.Stop()
	probe := time.NewTicker(quietProbe)
	defer probe.Stop()
	// Whatever TIMELINE holds past the position comes first.
	for {
		moved, err := r.fill(ctx)
		if err != nil {
			return err
		}
		if !moved || ctx.Err() != nil {
			break
		}
	}
	for ctx.Err() == nil {
		r.take()
		if r.held.ready() {
			if err := r.applyHeld(ctx); err != nil {
				return err
			}
			continue
		}
		if r.held.n > 0 {
			// Events past a gap: let the feed fill it for a moment, then
			// read it (at once when too much waits on it, unless the last
			// read found nothing there yet).
			if r.gapSince.IsZero() {
				r.gapSince = time.Now()
				gap.Reset(gapWait)
			} else if time.Since(r.gapSince) >= gapWait || r.held.n >= 4*r.batch() && !r.stalled {
				moved, err := r.fill(ctx)
				if err != nil {
					return err
				}
				if r.stalled = !moved; r.stalled {
					r.gapSince = time.Now()
					gap.Reset(gapWait)
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case evs := <-r.feed.batches:
			r.hold(evs)
		case <-gap.C:
		case <-probe.C:
			if time.Since(r.lastOffer) >= quietProbe && r.held.n == 0 {
				if _, err := r.fill(ctx); err != nil {
					return err
				}
			}
			// A position that moved last before traffic stopped is kept
			// now, not only when the next batch comes.
			if time.Since(r.savedAt) >= cursorEvery {
				if err := r.save(ctx); err != nil {
					r.log.Warn("keep the projection's position", "err", err)
				}
			}
		}
	}
	return nil
}

func (r *fedRun) batch() int { return max(r.p.Batch, 1) }

// take holds whatever the feed has waiting, without blocking.
func (r *fedRun) take() {
	for {
		select {
		case evs := <-r.feed.batches:
			r.hold(evs)
		default:
			return
		}
	}
}

// hold keeps the events of evs the projection has not applied.
func (r *fedRun) hold(evs []Stored) {
	r.lastOffer = time.Now()
	for i := range evs {
		if r.held.put(&evs[i]) {
			r.head = max(r.head, evs[i].StreamSeq)
		}
	}
}

// applyHeld applies the run of held events from pos+1 on, lingering for
// more when the batch is not full.
func (r *fedRun) applyHeld(ctx context.Context) error {
	r.b.Stored = r.held.run(r.b.Stored[:0], r.batch())
	if r.p.Linger > 0 && len(r.b.Stored) < r.batch() {
		linger := time.NewTimer(r.p.Linger)
	wait:
		for len(r.b.Stored) < r.batch() {
			select {
			case evs := <-r.feed.batches:
				r.hold(evs)
				r.b.Stored = r.held.run(r.b.Stored, r.batch())
			case <-linger.C:
				break wait
			case <-ctx.Done():
				break wait
			}
		}
		linger.Stop()
	}
	// The feed brought the next events: a gap past them is a new one and
	// gets its own wait. (After a read from TIMELINE the gap it read may
	// go on: the next read follows at once.)
	r.gapSince = time.Time{}
	return r.apply(ctx, r.pos+uint64(len(r.b.Stored)))
}

// fill reads from TIMELINE what follows pos (a batch of it) and applies
// it; moved is false when there was nothing.
func (r *fedRun) fill(ctx context.Context) (moved bool, err error) {
	evs, through, err := r.tl.ReadFrom(ctx, r.pos+1, r.batch())
	if err != nil {
		if ctx.Err() != nil {
			return false, nil
		}
		return false, fmt.Errorf("projection %s: read TIMELINE from #%d: %w", r.p.Name, r.pos+1, err)
	}
	if through <= r.pos {
		return false, nil
	}
	r.head = max(r.head, through)
	r.b.Stored = append(r.b.Stored[:0], evs...)
	r.feed.read.Add(float64(len(evs)))
	r.log.Debug("projection read TIMELINE", "from", r.pos+1, "through", through, "events", len(evs))
	return true, r.apply(ctx, through)
}

// apply hands r.b to the handler, retrying as RunProjection does, and
// moves the position to through, and the held window past it.
func (r *fedRun) apply(ctx context.Context, through uint64) error {
	if len(r.b.Stored) > 0 {
		r.b.pending = r.head - through
		done, err := RetryBatch(ctx, r.log, len(r.b.Stored), nil, func(ctx context.Context) error { return r.h(ctx, &r.b) })
		if err != nil {
			return fmt.Errorf("projection %s: %w", r.p.Name, err)
		}
		if !done {
			return nil
		}
	}
	r.pos = max(r.pos, through)
	r.feed.applied.Store(r.pos)
	// What was read may have been held too.
	r.held.skip(r.pos + 1)
	if r.held.n == 0 {
		r.gapSince = time.Time{}
	}
	if time.Since(r.savedAt) >= cursorEvery {
		if err := r.save(ctx); err != nil {
			// Not fatal: the position is kept next time, or the events
			// since are applied again.
			r.log.Warn("keep the projection's position", "err", err)
		}
	}
	return nil
}

// save writes the position if it moved.
func (r *fedRun) save(ctx context.Context) error {
	r.savedAt = time.Now()
	if r.pos == r.saved {
		return nil
	}
	if err := r.cursors.put(ctx, r.p.Name, r.pos); err != nil {
		return err
	}
	r.saved = r.pos
	return nil
}

// cursors are the positions of fed projections, in the bucket PROJECTIONS.
type cursors struct{ js jetstream.JetStream }

func newCursors(js jetstream.JetStream) cursors { return cursors{js} }

// get returns name's position; 0 if it has none (or there is no bucket: a
// stream set up before fed projections).
func (c cursors) get(ctx context.Context, name string) (uint64, error) {
	kv, err := c.js.KeyValue(ctx, CursorBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("projection %s: open %s: %w", name, CursorBucket, err)
	}
	e, err := kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("projection %s: read its position: %w", name, err)
	}
	pos, err := strconv.ParseUint(string(e.Value()), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("projection %s: position %q: %w", name, e.Value(), err)
	}
	return pos, nil
}

func (c cursors) put(ctx context.Context, name string, pos uint64) error {
	kv, err := c.js.KeyValue(ctx, CursorBucket)
	if err != nil {
		return fmt.Errorf("projection %s: open %s: %w", name, CursorBucket, err)
	}
	if _, err := kv.Put(ctx, name, strconv.AppendUint(nil, pos, 10)); err != nil {
		return fmt.Errorf("projection %s: keep its position: %w", name, err)
	}
	return nil
}

// maxHeld bounds how far past the position offered events are held; one
// further is dropped and read from TIMELINE when its turn comes.
const maxHeld = 1 << 16

// held is the window of offered events from stream sequence front on (the
// projection's position plus one, plus what is collected for the batch at
// hand), as a ring: the event at stream sequence s sits at s mod len(ring),
// so nothing moves as the window does. It points into the offered slices,
// which nobody changes.
type held struct {
	ring  []*Stored
	front uint64
	n     int // events held
}

// put holds e; false if it is before the window or too far past it.
func (h *held) put(e *Stored) bool {
	if e.StreamSeq < h.front {
		return false
	}
	d := e.StreamSeq - h.front
	if d >= maxHeld {
		return false
	}
	if d >= uint64(len(h.ring)) {
		h.grow(d + 1)
	}
	slot := &h.ring[e.StreamSeq&uint64(len(h.ring)-1)]
	if *slot == nil {
		h.n++
	}
	*slot = e
	return true
}

// grow makes the ring at least n long (a power of two).
func (h *held) grow(n uint64) {
	size := max(len(h.ring), 64)
	for uint64(size) < n {
		size *= 2
	}
	ring := make([]*Stored, size)
	for _, e := range h.ring {
		if e != nil {
			ring[e.StreamSeq&uint64(size-1)] = e
		}
	}
	h.ring = ring
}

// ready reports whether the event at the front is held.
func (h *held) ready() bool {
	return h.n > 0 && h.ring[h.front&uint64(len(h.ring)-1)] != nil
}

// run appends to out the events held from the front on, up to max in all,
// and moves the front past them.
func (h *held) run(out []Stored, max int) []Stored {
	for len(out) < max && h.ready() {
		slot := &h.ring[h.front&uint64(len(h.ring)-1)]
		out = append(out, **slot)
		*slot = nil
		h.n--
		h.front++
	}
	return out
}

// skip moves the front to next, letting go of what it passes.
func (h *held) skip(next uint64) {
	if next <= h.front {
		return
	}
	if h.n > 0 {
		if next-h.front >= uint64(len(h.ring)) {
			clear(h.ring)
			h.n = 0
		} else {
			for s := h.front; s < next; s++ {
				if slot := &h.ring[s&uint64(len(h.ring)-1)]; *slot != nil {
					*slot = nil
					h.n--
				}
			}
		}
	}
	h.front = next
}
