package unread

import (
	"context"
)

// Mentions: beside each unread zset, a zset per (user, conversation) of the
// unread messages that mention the user, with a set of the user's
// conversations that have any. They follow the unread rules exactly: a
// mention counts when its message would count as unread for the user (not
// their own, not before they joined, not at or below their read pointer),
// the read pointer clears them (readScript), a recall removes its target
// (removeScript), leaving forgets them, and a rebuild replays them.

func (s *Store) mentionKey(user, conv string) string {
	return s.prefix + "u:{" + user + "}:mention:" + conv
}
func (s *Store) mentionConvsKey(user string) string { return s.prefix + "u:{" + user + "}:mconvs" }

// Mention counts conv's message seq as an unread mention of user.
func Mention(user, conv string, seq int64) Op { return Op{opMention, user, conv, seq} }

// MentionCounts returns how many unread messages mention user, per
// conversation, only those above zero.
func (s *Store) MentionCounts(ctx context.Context, user string) (map[string]int64, error) {
	return s.counts(ctx, user, s.mentionConvsKey(user), s.mentionKey)
}
