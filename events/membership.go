package events

import "context"

// Member is one user's standing in one conversation.
type Member struct {
	Role string
	// Joined is the seq the user's history starts at.
	Joined int64
}

// Conv is what is known of one conversation's membership.
type Conv struct {
	Kind    string
	Owner   string
	Members map[string]string // user id to role
	// Joined is the seq each member's history starts at.
	Joined map[string]int64
}

// Membership is the one membership rule, as the store answers it
// (postgres.Members): a user is a member while their row exists and they are
// not leaving.
type Membership interface {
	// Check answers from the store, never a cache, that user is a member of
	// each of convs: not_found when a conversation does not exist,
	// forbidden when the user is not a member of one.
	Check(ctx context.Context, user string, convs ...string) (map[string]Member, error)
	// Load reads conv's current members.
	Load(ctx context.Context, conv string) (*Conv, error)
}
