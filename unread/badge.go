package unread

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/seqchat/seqchat/events"
)

// Recipients are the members for whom message e counts as unread: every
// member but the sender whose history includes it.
func Recipients(cv *events.Conv, e events.Event) []string {
	var out []string
	for u := range cv.Members {
		if u != e.From && cv.Joined[u] <= e.Seq {
			out = append(out, u)
		}
	}
	return out
}

// BadgeKey asks for user's badge after conv's message seq.
type BadgeKey struct {
	User, Conv string
	Seq        int64
}

// Badge is a user's total unread count including one message, or Read when
// the user has read that message already.
type Badge struct {
	Unread int64
	Read   bool
}

// Badges answers keys, in the order the messages were appended, in two
// round trips. A message the projection has not counted yet (the unread
// projector may lag) is counted here, and so are the ones before it in
// keys: the total always includes it, once. The unread projector may count
// a message while this runs, so whether it is counted and the counts it
// adds to are read together, in one transaction.
func (s *Store) Badges(ctx context.Context, keys []BadgeKey) ([]Badge, error) {
	out := make([]Badge, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	type first struct {
		read  *redis.StringCmd
		convs *redis.StringSliceCmd
	}
	f := make([]first, len(keys))
	pipe := s.rdb.Pipeline()
	for i, k := range keys {
		f[i] = first{
			read:  pipe.HGet(ctx, s.readKey(k.User), k.Conv),
			convs: pipe.SMembers(ctx, s.convsKey(k.User)),
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, fmt.Errorf("badges: %w", err)
	}
	tx := s.rdb.TxPipeline()
	scores := make([]*redis.FloatCmd, len(keys))
	cards := make([][]*redis.IntCmd, len(keys))
	for i, k := range keys {
		read, _ := strconv.ParseInt(f[i].read.Val(), 10, 64)
		if read >= k.Seq {
			out[i].Read = true
			continue
		}
		scores[i] = tx.ZScore(ctx, s.zkey(k.User, k.Conv), strconv.FormatInt(k.Seq, 10))
		// The message's own conversation may have joined the set since.
		convs := f[i].convs.Val()
		if !slices.Contains(convs, k.Conv) {
			convs = append(convs, k.Conv)
		}
		for _, c := range convs {
			cards[i] = append(cards[i], tx.ZCard(ctx, s.zkey(k.User, c)))
		}
	}
	if _, err := tx.Exec(ctx); err != nil && err != redis.Nil {
		return nil, fmt.Errorf("badges: %w", err)
	}
	// Messages of one call not counted yet add up: a user's second message
	// of the batch counts the first too.
	uncounted := map[string]int64{}
	for i, k := range keys {
		if out[i].Read {
			continue
		}
		if scores[i].Err() == redis.Nil {
			uncounted[k.User]++
		}
		out[i].Unread = uncounted[k.User]
		for _, c := range cards[i] {
			out[i].Unread += c.Val()
		}
	}
	return out, nil
}
