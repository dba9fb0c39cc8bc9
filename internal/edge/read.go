package edge

import (
	"context"

	"github.com/seqchat/seqchat/events"
)

// read stores the user's read pointer.
func (c *conn) read(id, conv string, seq int64) {
	ctx, cancel := context.WithTimeout(c.ctx, c.e.opt.CommandTimeout)
	defer cancel()
	if _, err := c.e.member(ctx, c.user, []string{conv}); err != nil {
		c.fail(id, err)
		return
	}
	if c.e.opt.Reads == nil {
		c.fail(id, events.Errorf(events.CodeUnavailable, "reads are not served here"))
		return
	}
	// Only forward, never past the head; unread counts follow, and the
	// user's other connections get a receipt (this one gets the ack).
	if _, err := c.e.opt.Reads.Read(ctx, c.user, conv, seq, c.origin); err != nil {
		c.fail(id, err)
		return
	}
	c.send(ackFrame{Type: "ack", ID: id, Conv: conv}.appendJSON(nil))
}

// member checks that user belongs to each of convs (membership's one rule)
// and returns the seq each one's history starts at for them.
func (e *Edge) member(ctx context.Context, user string, convs []string) (map[string]int64, error) {
	ms, err := e.members.Check(ctx, user, convs...)
	if err != nil {
		return nil, err
	}
	joined := make(map[string]int64, len(ms))
	for conv, m := range ms {
		joined[conv] = m.Joined
	}
	return joined, nil
}
