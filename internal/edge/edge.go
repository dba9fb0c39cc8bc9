// Package edge terminates the clients' WebSocket connections (GET /v1/ws,
// docs/protocol.md): it authenticates them, records them in presence, turns their
// frames into commands, and writes to them the acks of their commands and
// the events fanout sends to this edge on deliver.<edge-id>, each
// conversation in seq order with no gap and no duplicate (see order.go).
//
// An edge holds no state that outlives its connections: any edge can serve
// any user, and a dead edge loses nothing a client was told was stored.
package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/activity"
	"github.com/seqchat/seqchat/internal/auth"
	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/internal/serve"
	"github.com/seqchat/seqchat/timeline"
)

// Options configure an edge.
type Options struct {
	ID             string // the edge's id: it listens on deliver.<ID>
	OutboundSize   int    // frames queued per connection before it is dropped as too slow
	RateLimits     bool
	CommandRate    float64 // commands per second per connection
	CommandBurst   int
	CommandTimeout time.Duration // how long a command waits for its seq
	PingInterval   time.Duration
	IdleTimeout    time.Duration // a connection silent this long is closed
	GapWait        time.Duration // how long a hole may wait before it is read from history
	// FirstSyncWait is how long a new connection's live events wait for
	// its first sync before they are delivered without one (docs/protocol.md:
	// 10 seconds).
	FirstSyncWait time.Duration
	Log           *slog.Logger
	Metrics       prometheus.Registerer

	// Heartbeat is how often the edge refreshes its connections' presence
	// (default: four fifths of the presence TTL).
	Heartbeat time.Duration
	// AllowedOrigins are the origins a browser may connect from besides the
	// edge's own ("*": any). A client that sends no Origin (not a browser)
	// is not checked: it cannot be a foreign page riding on a user's token.
	AllowedOrigins []string
	Reads          Reads
	Frames         Frames // presence frames; nil: none sent
	Revocations    Revocations
	UserLimit      UserLimit // nil: no per-user limit
	// Friends lists whom a user's presence changes are told to; nil: nobody.
	Friends func(ctx context.Context, user string) ([]string, error)
}

func (o *Options) defaults() {
	// The settings config has keep their defaults there; the rest are the
	// edge's own.
	d := config.Default()
	if o.OutboundSize <= 0 {
		o.OutboundSize = d.EdgeOutboundSize
	}
	if o.CommandRate <= 0 {
		o.CommandRate = d.CommandRate
	}
	if o.CommandBurst <= 0 {
		o.CommandBurst = d.CommandBurst
	}
	if o.CommandTimeout <= 0 {
		o.CommandTimeout = d.CommandTimeout
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 25 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 75 * time.Second
	}
	if o.GapWait <= 0 {
		// Long enough that fanout lagging under load is not taken for a
		// lost delivery (each repair is a history read).
		o.GapWait = 300 * time.Millisecond
	}
	if o.FirstSyncWait <= 0 {
		o.FirstSyncWait = d.EdgeFirstSyncWait
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = prometheus.NewRegistry()
	}
}

// Protocol limits.
const (
	maxFrame    = 64 << 10 // a bigger frame closes the connection (1009)
	maxInFlight = 1024     // commands one connection may have waiting for their seq
	// maxPublishBatch bounds the commands of one connection that go to CMDS
	// as one message.
	maxPublishBatch = 64
	maxSyncConvs    = 1000 // conversations one sync may name
	// refusedBlock is how long at most a refused command blocks its
	// connection's later ones (conn.go's submit): three retry hints.
	refusedBlock = 3 * timeline.BusyRetry
	maxReplay    = 1000 // events one sync replays per conversation
	writeWait    = 10 * time.Second
)

type metrics struct {
	conns     prometheus.Gauge
	framesIn  prometheus.Counter
	framesOut prometheus.Counter
	ackTime   prometheus.Histogram
	delivery  prometheus.Histogram
	slow      prometheus.Counter
	repairs   prometheus.Counter
	presence  prometheus.Counter
	rejected  *prometheus.CounterVec // by limit, shared with the api
	// refusedBehind counts commands refused because an earlier command of
	// their connection was refused and not resent yet (conn.go's submit).
	refusedBehind prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	lat := prometheus.ExponentialBuckets(0.0005, 2, 15) // 0.5ms .. 8s
	return &metrics{
		conns:     f.NewGauge(prometheus.GaugeOpts{Name: "chat_edge_connections", Help: "Open WebSocket connections."}),
		framesIn:  f.NewCounter(prometheus.CounterOpts{Name: "chat_edge_frames_in_total", Help: "Frames read from clients."}),
		framesOut: f.NewCounter(prometheus.CounterOpts{Name: "chat_edge_frames_out_total", Help: "Frames written to clients."}),
		ackTime:   f.NewHistogram(prometheus.HistogramOpts{Name: "chat_edge_ack_seconds", Help: "From reading a command to queueing its ack.", Buckets: lat}),
		delivery:  f.NewHistogram(prometheus.HistogramOpts{Name: "chat_edge_delivery_seconds", Help: "From an event's ts to its arrival at the edge.", Buckets: lat}),
		slow:      f.NewCounter(prometheus.CounterOpts{Name: "chat_edge_slow_consumers_total", Help: "Connections dropped because they did not drain their outbound queue."}),
		repairs:   f.NewCounter(prometheus.CounterOpts{Name: "chat_edge_gap_repairs_total", Help: "Holes in a connection's event stream filled from history."}),
		presence:  f.NewCounter(prometheus.CounterOpts{Name: "chat_edge_presence_transitions_total", Help: "Users this edge announced online or offline."}),
		rejected:  activity.Rejections(reg),
		refusedBehind: f.NewCounter(prometheus.CounterOpts{Name: "chat_edge_commands_refused_behind_total",
			Help: "Commands refused with unavailable because an earlier command of their connection was refused and not resent yet."}),
	}
}

// Edge serves WebSocket connections.
type Edge struct {
	opt      Options
	nc       *nats.Conn
	cmds     Publisher
	hist     History
	members  Members
	tokens   *auth.Tokens
	presence Presence
	upgrader websocket.Upgrader
	m        *metrics
	sub      *nats.Subscription
	subAll   *nats.Subscription // frames for every connection (push.go)
	// failing holds back the repeats of a presence sweep or refresh that
	// fails every round while Redis is down: one line a minute, not one a
	// second.
	failing *serve.Repeats
	typists typingGate // typing.go

	wg sync.WaitGroup // connections being served

	mu      sync.RWMutex
	closing bool
	nextID  uint64
	conns   map[*conn]struct{}
	byUser  map[string]map[*conn]struct{}
}

// New returns an edge listening on deliver.<opt.ID>. It serves connections
// once mounted, and until Run's context ends.
func New(nc *nats.Conn, cmds Publisher, hist History, members Members, tokens *auth.Tokens, pres Presence, opt Options) (*Edge, error) {
	opt.defaults()
	if !events.ValidToken(opt.ID) {
		return nil, fmt.Errorf("edge id %q cannot be a subject token", opt.ID)
	}
	e := &Edge{
		opt: opt, nc: nc, cmds: cmds, hist: hist, members: members, tokens: tokens, presence: pres,
		m: newMetrics(opt.Metrics), failing: serve.NewRepeats(time.Minute),
		conns: map[*conn]struct{}{}, byUser: map[string]map[*conn]struct{}{},
		upgrader: websocket.Upgrader{
			// corkWriter hands it the read buffer, which every connection
			// holds for life: small, as a frame bigger than it is read
			// straight into the message.
			ReadBufferSize:  0,
			WriteBufferSize: 1024,
			// One pool for all connections: an idle connection holds no
			// write buffer.
			WriteBufferPool: &sync.Pool{},
			// ServeHTTP checks the origin before it records the connection.
			CheckOrigin: func(*http.Request) bool { return true },
		},
	}
	sub, err := nc.Subscribe(timeline.DeliverSubject(opt.ID), e.deliver)
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", timeline.DeliverSubject(opt.ID), err)
	}
	// A burst beyond this is dropped by NATS and repaired from history.
	_ = sub.SetPendingLimits(1<<20, 1<<30)
	e.sub = sub
	if err := e.subscribeAll(); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	if opt.Revocations != nil {
		opt.Revocations.Watch(e.revoked)
	}
	return e, nil
}

// revoked closes the sockets opened with a session that logged out.
func (e *Edge) revoked(session, user string) {
	var list []*conn
	e.mu.RLock()
	for c := range e.byUser[user] {
		if c.session == session {
			list = append(list, c)
		}
	}
	e.mu.RUnlock()
	for _, c := range list {
		c.cancel()
		c.close(websocket.ClosePolicyViolation, events.MessageOf(events.LoggedOut()))
	}
}

// Mount adds GET /v1/ws to mux.
func (e *Edge) Mount(mux *http.ServeMux) { mux.Handle("GET /v1/ws", e) }

// Run refreshes the edge's presence and sweeps for users whose edges died
// until ctx ends, then closes every connection (1001) and removes the edge's
// presence.
func (e *Edge) Run(ctx context.Context) error {
	every := e.opt.Heartbeat
	if every <= 0 {
		every = e.presence.TTL() * 4 / 5
	}
	t := time.NewTicker(every)
	defer t.Stop()
	sweep := time.NewTicker(e.presence.SweepEvery())
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			e.shutdown()
			return nil
		case <-t.C:
			e.refresh(ctx)
		case <-sweep.C:
			e.sweep(ctx)
		}
	}
}

func (e *Edge) shutdown() {
	_ = e.sub.Unsubscribe()
	_ = e.subAll.Unsubscribe()
	e.mu.Lock()
	e.closing = true
	list := make([]*conn, 0, len(e.conns))
	for c := range e.conns {
		list = append(list, c)
	}
	e.mu.Unlock()
	for _, c := range list {
		c.close(websocket.CloseGoingAway, "server shutting down")
	}
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		e.opt.Log.Warn("connections still open at shutdown")
	}
	// What is still open loses its context: its commands and reads end.
	for _, c := range list {
		c.cancel()
	}
}

// ServeHTTP authenticates and upgrades a connection, then serves it.
func (e *Edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !originAllowed(r, e.opt.AllowedOrigins) {
		httpError(w, events.Errorf(events.CodeForbidden, "origin not allowed"))
		return
	}
	claims, err := e.tokens.FromRequest(r, true)
	if err == nil {
		err = e.checkRevoked(claims.SessionID)
	}
	if err != nil {
		httpError(w, err)
		return
	}
	c, err := e.add(r.Context(), claims)
	if err != nil {
		httpError(w, err)
		return
	}
	// A logout that landed while the connection was being recorded found
	// nothing to close: look again now that it is findable.
	if e.checkRevoked(claims.SessionID) != nil {
		e.remove(c)
		httpError(w, events.LoggedOut())
		return
	}
	// The socket goes under a corkConn, so that the writer sends what is
	// queued in one write (cork.go).
	ws, err := e.upgrader.Upgrade(corkWriter{w}, r, nil)
	if err != nil {
		e.remove(c)
		return // the upgrader has answered
	}
	// Serve on a goroutine of our own and let net/http's handler return:
	// it would otherwise hold its request buffers (8 KiB) and the stack
	// that parsed the request for the whole life of the socket.
	go c.serve(ws) // its end removes it
}

func httpError(w http.ResponseWriter, err error) {
	code := events.CodeOf(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(serve.HTTPStatus(code))
	_ = json.NewEncoder(w).Encode(map[string]any{
		"error": map[string]string{"code": string(code), "message": events.MessageOf(err)},
	})
}

// checkRevoked refuses a token whose session was logged out: an in-memory
// lookup, kept current by the revocations every replica hears.
func (e *Edge) checkRevoked(session string) error {
	if e.opt.Revocations != nil && e.opt.Revocations.Revoked(session) {
		return events.LoggedOut()
	}
	return nil
}

// originAllowed checks a browser's Origin: its own origin (the Host it
// asked), or one of allowed. Without an Origin header the client is not a
// browser, and no page can have sent it.
func originAllowed(r *http.Request, allowed []string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, a := range allowed {
		if a == "*" || strings.EqualFold(strings.TrimSuffix(a, "/"), origin) {
			return true
		}
	}
	return false
}

// add registers a connection here and in presence before it is upgraded,
// so that every event appended after its first sync is routed to this edge.
func (e *Edge) add(ctx context.Context, claims auth.Claims) (*conn, error) {
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		return nil, events.Errorf(events.CodeUnavailable, "edge shutting down")
	}
	e.nextID++
	id := strconv.FormatUint(e.nextID, 36)
	c := newConn(e, claims, id)
	e.conns[c] = struct{}{}
	if e.byUser[c.user] == nil {
		e.byUser[c.user] = map[*conn]struct{}{}
	}
	e.byUser[c.user][c] = struct{}{}
	e.wg.Add(1)
	e.mu.Unlock()
	e.m.conns.Inc()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	online, err := e.presence.Connect(pctx, e.opt.ID, c.pc)
	if err != nil {
		e.remove(c)
		return nil, events.WrapError(events.CodeUnavailable, err, "presence unavailable, try again")
	}
	if online {
		e.announce(pctx, c.user, true)
	}
	return c, nil
}

func (e *Edge) remove(c *conn) {
	e.mu.Lock()
	if _, ok := e.conns[c]; !ok {
		e.mu.Unlock()
		return
	}
	delete(e.conns, c)
	if set := e.byUser[c.user]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(e.byUser, c.user)
		}
	}
	e.mu.Unlock()
	c.cancel()
	e.m.conns.Dec()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	offline, err := e.presence.Disconnect(ctx, e.opt.ID, c.pc)
	if err != nil {
		// It expires by itself within the TTL, and a sweep announces it.
		e.opt.Log.Warn("remove presence", "err", err)
	}
	if offline {
		e.announce(ctx, c.user, false)
	}
	e.wg.Done()
}

// errorIs reports whether err is a normal end of a connection.
func errorIs(err error) bool {
	return websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived) ||
		errors.Is(err, context.Canceled)
}
