package api

import (
	"context"
	"time"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/postgres"
)

// Stores are where the api keeps what it serves (internal/postgres, or a
// test's own). Their errors carry the protocol's codes already.
type Stores struct {
	Accounts      Accounts
	Friends       Friends
	Sessions      Sessions
	Conversations Conversations
	Members       Members
}

// Accounts keeps the users.
type Accounts interface {
	// CreateUser answers conflict when username is taken.
	CreateUser(ctx context.Context, id, username, passwordHash string) error
	// Credentials returns an empty hash when there is no such user or no
	// password logs in as them.
	Credentials(ctx context.Context, username string) (id, hash string, err error)
	Username(ctx context.Context, id string) (name string, ok bool, err error)
	// ResolveUser takes an id or a username; not_found when neither.
	ResolveUser(ctx context.Context, ref string) (string, error)
	CountExisting(ctx context.Context, ids []string) (int, error)
	// EnsureUser signs in a user the app's backend vouches for, creating
	// them under newID without a password on first use.
	EnsureUser(ctx context.Context, newID, username string) (string, error)
}

// Friends keeps mutual friendships.
type Friends interface {
	Add(ctx context.Context, user, friend string) error
	Remove(ctx context.Context, user, friend string) error
	List(ctx context.Context, user string) ([]postgres.User, error)
}

// Sessions keeps the logged-out sessions, asked when Options.Revocations
// is not wired.
type Sessions interface {
	Revoke(ctx context.Context, session string, expires time.Time) error
	IsRevoked(ctx context.Context, session string) (bool, error)
}

// Conversations keeps conversations and their member rows.
type Conversations interface {
	Create(ctx context.Context, conv postgres.NewConversation) (id string, created bool, err error)
	List(ctx context.Context, user, conv string) ([]postgres.Summary, error)
	Members(ctx context.Context, conv string) ([]string, error)
	Kind(ctx context.Context, conv string) (kind string, rows int, err error)
	BeginJoin(ctx context.Context, conv, user, id, by string) (postgres.Pending, error)
	FinishJoin(ctx context.Context, conv, user string, seq int64, id string) error
	BeginLeave(ctx context.Context, conv, user, id, by string) (postgres.Pending, error)
	FinishLeave(ctx context.Context, conv, user string) error
}

// Members answers the membership rule: not_found when a conversation does
// not exist, forbidden when user is not in one.
type Members interface {
	Check(ctx context.Context, user string, convs ...string) (map[string]events.Member, error)
}

// History reads conversations' history (postgres.History): every seq once
// acked, even before the projector has written it.
type History interface {
	// Head returns conv's last seq.
	Head(ctx context.Context, conv string) (int64, error)
	// Range returns conv's events from..to as history shows them
	// (recalls, edits and reactions applied to their targets).
	Range(ctx context.Context, conv string, from, to int64) ([]events.Event, error)
	// Search returns up to limit of user's messages matching every word
	// of q (in conv only, unless conv is ""), newest first.
	Search(ctx context.Context, user, q, conv string, limit int) ([]events.Event, error)
	// Reactions returns who reacts with what on conv's message seq.
	Reactions(ctx context.Context, conv string, seq int64) (map[string][]string, error)
}
