package edge

import (
	"context"
	"sync"
	"time"

	"github.com/seqchat/seqchat/events"
)

// Typing: {"type":"typing","conv","on"?} goes through the edges only, never
// through TIMELINE: the edge checks membership and sends
// {"type":"typing","conv","user","on"} to the other members' connections
// with one core NATS publish per edge that holds them (fanout.Frames, the
// presence lookup), at most once. Each edge forwards at most one per user
// and conversation per second and drops the rest without an answer.

// typingEvery is how often one user's typing in one conversation is
// forwarded.
const typingEvery = time.Second

type typingFrame struct {
	Type string `json:"type"`
	Conv string `json:"conv"`
	User string `json:"user"`
	On   bool   `json:"on"`
}

func checkTyping(f *frame) error {
	if f.Conv == "" {
		return badRequest("typing needs a conv")
	}
	if !events.ValidToken(f.Conv) {
		return badRequest("conv %q is not a conversation id", f.Conv)
	}
	return nil
}

// typingGate remembers when each (user, conversation) was last forwarded.
type typingGate struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// allow reports whether key may be forwarded now, and records it if so.
func (g *typingGate) allow(key string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t, ok := g.last[key]; ok && now.Sub(t) < typingEvery {
		return false
	}
	if g.last == nil || len(g.last) > 100_000 {
		// Bounded: entries older than a second are worthless anyway.
		fresh := make(map[string]time.Time, len(g.last)/2)
		for k, t := range g.last {
			if now.Sub(t) < typingEvery {
				fresh[k] = t
			}
		}
		g.last = fresh
	}
	g.last[key] = now
	return true
}

// typing forwards a typing frame to the conversation's other members. The
// lookups run off the reading goroutine, like commands.
func (c *conn) typing(f frame) {
	if !c.e.typists.allow(c.user+" "+f.Conv, time.Now()) {
		return
	}
	on := f.On == nil || *f.On
	go func() {
		ctx, cancel := context.WithTimeout(c.ctx, typingEvery)
		defer cancel()
		cv, err := c.e.members.Load(ctx, f.Conv)
		if err == nil && cv.Members[c.user] == "" {
			err = events.NotMember(f.Conv)
		}
		if err != nil {
			c.fail(f.ID, err)
			return
		}
		if c.e.opt.Frames == nil {
			return
		}
		others := make([]string, 0, len(cv.Members))
		for u := range cv.Members {
			if u != c.user {
				others = append(others, u)
			}
		}
		frame := encode(typingFrame{Type: "typing", Conv: f.Conv, User: c.user, On: on})
		if err := c.e.opt.Frames.Send(ctx, others, frame, c.origin); err != nil && c.ctx.Err() == nil {
			c.e.opt.Log.Debug("typing not forwarded", "user", c.user, "conv", f.Conv, "err", err)
		}
	}()
}
