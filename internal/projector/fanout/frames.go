package fanout

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/seqchat/seqchat/timeline"
)

// Frames sends ready-made frames to users' connections through the edges
// that hold them, like events: one core NATS publish per edge, found with one
// presence round trip. Delivery is at most once; these frames are hints a
// client can re-read over REST.
type Frames struct {
	nc    *nats.Conn
	where Locator
}

// NewFrames returns a sender of frames.
func NewFrames(nc *nats.Conn, where Locator) *Frames { return &Frames{nc: nc, where: where} }

// Send delivers frame to every live connection of users but origin
// ("<edge>/<conn>", or empty).
func (f *Frames) Send(ctx context.Context, users []string, frame []byte, origin string) error {
	if len(users) == 0 {
		return nil
	}
	edges, err := f.where.Edges(ctx, users)
	if err != nil {
		return err
	}
	byEdge := map[string][]string{}
	for _, u := range users {
		for _, e := range edges[u] {
			byEdge[e] = append(byEdge[e], u)
		}
	}
	for edge, to := range byEdge {
		m := nats.NewMsg(timeline.DeliverSubject(edge))
		m.Data = frame
		m.Header.Set(timeline.HeaderKind, timeline.KindFrame)
		m.Header.Set(timeline.HeaderTo, strings.Join(to, " "))
		if origin != "" {
			m.Header.Set(timeline.HeaderOrigin, origin)
		}
		if err := f.nc.PublishMsg(m); err != nil {
			return fmt.Errorf("deliver frame to edge %s: %w", edge, err)
		}
	}
	return nil
}
