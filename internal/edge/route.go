package edge

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/timeline"
)

// Routing: what fanout sends to this edge on deliver.<edge-id>, handed
// to the recipients' connections.

// eventHead is what the edge reads of an event to route it.
type eventHead struct {
	Conv string `json:"conv"`
	Seq  int64  `json:"seq"`
	ID   string `json:"id"`
	From string `json:"from"`
	TS   int64  `json:"ts"`
}

// headFields are eventHead's JSON names.
var headFields = [][]byte{[]byte("conv"), []byte("seq"), []byte("id"), []byte("from"), []byte("ts")}

func foldsToHeadField(key []byte) bool {
	for _, f := range headFields {
		if bytes.EqualFold(key, f) {
			return true
		}
	}
	return false
}

// decodeHead reads the head of an event the sequencer encoded: by hand in
// the plain case (every delivery is read once per edge; the rest of the
// event, body included, goes out as it came, unchecked), else with
// encoding/json.
func decodeHead(b []byte) (eventHead, error) {
	var h eventHead
	ok := events.ScanFlat(b, func(key, v []byte) (ok bool) {
		switch string(key) {
		case "conv":
			h.Conv, ok = events.PlainString(v)
		case "seq":
			h.Seq, ok = events.PlainInt(v)
		case "id":
			h.ID, ok = events.PlainString(v)
		case "from":
			h.From, ok = events.PlainString(v)
		case "ts":
			h.TS, ok = events.PlainInt(v)
		default:
			// encoding/json matches names without regard to case: a name
			// that folds to one of the head's is left to it.
			ok = !foldsToHeadField(key)
		}
		return ok
	})
	if ok {
		return h, nil
	}
	h = eventHead{}
	err := json.Unmarshal(b, &h)
	return h, err
}

// ID is the edge's id: it listens on deliver.<id>.
func (e *Edge) ID() string { return e.opt.ID }

// DeliverEvent hands ev (data: as TIMELINE holds it) to the connections of
// the users to, as if it had come on deliver.<edge-id>: for a fanout
// projector in the same process (fanout.Local), which has it decoded.
func (e *Edge) DeliverEvent(ev *events.Event, data []byte, to []string) {
	e.route(eventHead{Conv: ev.Conv, Seq: ev.Seq, ID: ev.ID, From: ev.From, TS: ev.TS}, data, to)
}

// deliver hands an event fanout sent to this edge to its recipients'
// connections. It runs on the subscription's goroutine and never blocks.
func (e *Edge) deliver(m *nats.Msg) {
	if m.Header.Get(timeline.HeaderKind) == timeline.KindFrame {
		e.deliverFrame(m)
		return
	}
	h, err := decodeHead(m.Data)
	if err != nil || h.Conv == "" || h.Seq < 1 {
		e.opt.Log.Warn("undecodable delivery; dropped", "err", err)
		return
	}
	e.route(h, m.Data, strings.Fields(m.Header.Get(timeline.HeaderTo)))
}

// route hands the event h heads (data: as TIMELINE holds it) to the
// connections of the users to. It runs on deliver's goroutine or on a
// fanout's in this process, and never blocks; several may run at once.
func (e *Edge) route(h eventHead, data []byte, to []string) {
	if h.TS > 0 {
		e.m.delivery.Observe(max(0, float64(time.Now().UnixMilli()-h.TS)/1000))
	}
	frame := eventFrame(data) // encoded once for every connection
	var targets []*conn
	e.mu.RLock()
	for _, u := range to {
		for c := range e.byUser[u] {
			targets = append(targets, c)
		}
	}
	e.mu.RUnlock()
	for _, c := range targets {
		c.arriveEvent(h, frame)
	}
}

// deliverFrame writes a ready-made frame (a receipt, a presence change) to
// the recipients' connections but the one it came from.
func (e *Edge) deliverFrame(m *nats.Msg) {
	origin := m.Header.Get(timeline.HeaderOrigin)
	var targets []*conn
	e.mu.RLock()
	for _, u := range strings.Fields(m.Header.Get(timeline.HeaderTo)) {
		for c := range e.byUser[u] {
			if c.origin != origin {
				targets = append(targets, c)
			}
		}
	}
	e.mu.RUnlock()
	for _, c := range targets {
		c.send(m.Data)
	}
}

// eventFrame turns an event's JSON into its frame on the socket.
func eventFrame(event []byte) []byte {
	if len(event) < 2 || event[0] != '{' {
		return nil
	}
	b := make([]byte, 0, len(event)+16)
	b = append(b, `{"type":"event",`...)
	return append(b, event[1:]...)
}
