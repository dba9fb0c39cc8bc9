package edge

import (
	"context"
	"time"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/activity"
)

// What the edge needs from the rest of the system, each defined here
// where it is used and wired by internal/wiring.

// Publisher appends commands to CMDS in the order it is called.
type Publisher interface {
	// PublishBatchFunc stores commands of one partition, in order, at
	// once, and calls answered once for each when its answer comes, when
	// ctx's deadline passes first or when it could not be stored.
	PublishBatchFunc(ctx context.Context, cmds []events.Command, origin string, answered func(i int, r events.Result, err error)) error
	SamePartition(a, b string) bool
	// Admit takes one of the process's slots for a command in flight,
	// waiting a little for one when they are all taken, or reports false;
	// Release gives one back (timeline.Submitter's admission control).
	Admit(ctx context.Context) bool
	Release()
}

// History reads a conversation's events by seq.
type History interface {
	Head(ctx context.Context, conv string) (int64, error)
	Range(ctx context.Context, conv string, from, to int64) ([]events.Event, error)
	Events(ctx context.Context, conv string, from, to int64) ([]events.Event, error)
}

// Members answers the membership rule from the store, never a cache: a
// request's authorisation must not rest on one another process may not have
// invalidated yet.
type Members interface {
	// Check answers not_found when a conversation does not exist,
	// forbidden when user is not a member of one.
	Check(ctx context.Context, user string, convs ...string) (map[string]events.Member, error)
	// Load returns conv's members; not_found when it does not exist.
	Load(ctx context.Context, conv string) (*events.Conv, error)
}

// Presence records which connections this edge holds and reports when a
// user goes online (first connection) or offline (last one).
type Presence interface {
	Connect(ctx context.Context, edge string, c activity.Conn) (online bool, err error)
	Disconnect(ctx context.Context, edge string, c activity.Conn) (offline bool, err error)
	Refresh(ctx context.Context, edge string, conns ...activity.Conn) (online []string, err error)
	Sweep(ctx context.Context, limit int) (offline []string, err error)
	SweepEvery() time.Duration
	TTL() time.Duration
}

// Reads moves read pointers (receipts.Service): the same path as REST, so
// unread counts and receipt frames follow a read on a socket too.
type Reads interface {
	Read(ctx context.Context, user, conv string, seq int64, origin string) (int64, error)
}

// Frames sends ready-made frames to users' connections on any edge.
type Frames interface {
	Send(ctx context.Context, users []string, frame []byte, origin string) error
}

// Revocations is the set of logged-out sessions (auth.Revocations).
type Revocations interface {
	Revoked(session string) bool
	Watch(fn func(session, user string))
}

// UserLimit limits commands per user across connections and edges.
type UserLimit interface {
	Allow(user string) (bool, time.Duration)
}
