package edge

import (
	"context"

	"github.com/seqchat/seqchat/internal/activity"
)

// Presence: announcing friends online and offline, keeping this edge's
// entries alive, and sweeping the ones dead edges left.

// sweep announces offline the users whose every presence entry expired: an
// edge died holding their last connections. Every edge sweeps; presence
// gives each transition to one of them.
func (e *Edge) sweep(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, e.presence.SweepEvery()*4)
	defer cancel()
	for {
		gone, err := e.presence.Sweep(ctx, 500)
		for _, u := range gone {
			e.announce(ctx, u, false)
		}
		if err != nil {
			e.logFailure("sweep presence", err)
			return
		}
		e.logRecovery("sweep presence")
		if len(gone) < 500 {
			return
		}
	}
}

// logFailure warns that what failed, at most once a minute while it keeps
// failing.
func (e *Edge) logFailure(what string, err error, attrs ...any) {
	if ok, held := e.failing.Allow(what); ok {
		e.opt.Log.Warn(what, append(attrs, "err", err, "held_back", held)...)
	}
}

// logRecovery says once that what works again after failing.
func (e *Edge) logRecovery(what string) {
	if e.failing.Clear(what) {
		e.opt.Log.Info(what + " works again")
	}
}

type presenceFrame struct {
	Type   string `json:"type"`
	User   string `json:"user"`
	Online bool   `json:"online"`
}

// announce tells user's friends that the user went online or offline.
func (e *Edge) announce(ctx context.Context, user string, online bool) {
	if e.opt.Frames == nil || e.opt.Friends == nil {
		return
	}
	e.m.presence.Inc()
	friends, err := e.opt.Friends(ctx, user)
	if err == nil {
		err = e.opt.Frames.Send(ctx, friends, encode(presenceFrame{Type: "presence", User: user, Online: online}), "")
	}
	if err != nil {
		// The friends list's online flags stay right; only the push is lost.
		e.opt.Log.Warn("announce presence", "user", user, "online", online, "err", err)
	}
}

func (e *Edge) refresh(ctx context.Context) {
	e.mu.RLock()
	list := make([]activity.Conn, 0, len(e.conns))
	for c := range e.conns {
		list = append(list, c.pc)
	}
	e.mu.RUnlock()
	ctx, cancel := context.WithTimeout(ctx, e.presence.TTL()/3)
	defer cancel()
	back, err := e.presence.Refresh(ctx, e.opt.ID, list...)
	if err != nil {
		e.logFailure("refresh presence", err, "conns", len(list))
	} else {
		e.logRecovery("refresh presence")
	}
	for _, u := range back {
		e.announce(ctx, u, true)
	}
}
