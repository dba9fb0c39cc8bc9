package fanout

import (
	"fmt"

	"github.com/nats-io/nats.go"
)

// AllSubject is the core NATS subject every edge listens on for frames
// meant for every live connection (a push to everyone): one publish reaches
// all edges, and each edge fans out to its own connections.
const AllSubject = "push.all"

// SendAll delivers frame to every live connection on every edge, at most
// once.
func SendAll(nc *nats.Conn, frame []byte) error {
	if err := nc.Publish(AllSubject, frame); err != nil {
		return fmt.Errorf("deliver frame to every edge: %w", err)
	}
	return nil
}
