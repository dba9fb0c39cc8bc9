package events

// Role is a member's standing in a conversation, as stored with the
// membership and shown in conversation listings.
type Role string

const (
	RoleOwner  Role = "owner"
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

// Privileged reports whether the role may manage a conversation's members
// and recall or edit other members' messages.
func (r Role) Privileged() bool { return r == RoleOwner || r == RoleAdmin }

// ConvKind is what kind of conversation one is.
type ConvKind string

const (
	ConvDirect ConvKind = "direct"
	ConvGroup  ConvKind = "group"
)
