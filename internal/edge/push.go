package edge

import (
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/seqchat/seqchat/timeline"
)

// subscribeAll listens for frames meant for every live connection (a push
// to everyone): one message reaches each edge, which writes it to each of
// its connections.
func (e *Edge) subscribeAll() error {
	sub, err := e.nc.Subscribe(timeline.AllSubject, e.deliverAll)
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", timeline.AllSubject, err)
	}
	_ = sub.SetPendingLimits(1<<16, 1<<28)
	e.subAll = sub
	return nil
}

func (e *Edge) deliverAll(m *nats.Msg) {
	e.mu.RLock()
	targets := make([]*conn, 0, len(e.conns))
	for c := range e.conns {
		targets = append(targets, c)
	}
	e.mu.RUnlock()
	for _, c := range targets {
		c.send(m.Data)
	}
}
