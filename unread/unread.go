// Package unread keeps the Redis projection of what each member has not read
// and which messages were recalled.
//
// Per (user, conversation) a sorted set holds the seqs of unread messages
// (score = member = seq): a message adds its seq for every member but its
// sender, a read pointer removes every seq up to it, a recall removes its
// target; the unread count is the set's cardinality. Each user also has a
// hash of read pointers (so a replayed message older than the pointer is not
// counted again) and a set of the conversations with unread messages. All of
// a user's keys share the hash tag {user}, so they live in one Redis Cluster
// slot and one script can touch them together. Recalled seqs are a set per
// conversation, tagged by conversation.
package unread

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Store reads and writes the projection.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	loaded atomic.Bool // the scripts are in Redis's cache
}

// New returns a store whose keys all start with prefix.
func New(rdb redis.UniversalClient, prefix string) *Store { return &Store{rdb: rdb, prefix: prefix} }

func (s *Store) zkey(user, conv string) string { return s.prefix + "u:{" + user + "}:unread:" + conv }
func (s *Store) convsKey(user string) string   { return s.prefix + "u:{" + user + "}:convs" }
func (s *Store) readKey(user string) string    { return s.prefix + "u:{" + user + "}:read" }
func (s *Store) recallKey(conv string) string  { return s.prefix + "c:{" + conv + "}:recalled" }
func (s *Store) markerKey() string             { return s.prefix + "unread:built" }

// Built reports whether the projection is there: false when it was never
// built, or Redis lost it (a restart without persistence).
func (s *Store) Built(ctx context.Context) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.markerKey()).Result()
	if err != nil {
		return false, fmt.Errorf("check unread projection: %w", err)
	}
	return n == 1, nil
}

// MarkBuilt records that the projection is complete up to now.
func (s *Store) MarkBuilt(ctx context.Context) error {
	if err := s.rdb.Set(ctx, s.markerKey(), "1", 0).Err(); err != nil {
		return fmt.Errorf("mark unread projection: %w", err)
	}
	return nil
}

// addScript adds messages' seqs unless the user has already read past them.
// KEYS: zset, convs set, read hash. ARGV: conv, seq…
var addScript = redis.NewScript(`
local read = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
local added = false
for i = 2, #ARGV do
  if tonumber(ARGV[i]) > read then
    redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i])
    added = true
  end
end
if added then
  redis.call('SADD', KEYS[2], ARGV[1])
end
return 0`)

// readScript moves a read pointer forward and drops what it covers, from
// the unread and the mentions (mentions.go) alike.
// KEYS: zset, convs set, read hash, mention zset, mention convs set. ARGV: conv, seq.
var readScript = redis.NewScript(`
local read = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
local seq = tonumber(ARGV[2])
if seq > read then
  redis.call('HSET', KEYS[3], ARGV[1], seq)
  read = seq
end
for _, k in ipairs({1, 4}) do
  redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', read)
  if redis.call('ZCARD', KEYS[k]) == 0 then
    redis.call('SREM', KEYS[k+1], ARGV[1])
  end
end
return read`)

// removeScript drops one seq (a recall) from the unread and the mentions,
// and forgets an emptied conversation.
// KEYS: zset, convs set, mention zset, mention convs set. ARGV: conv, seq.
var removeScript = redis.NewScript(`
for _, k in ipairs({1, 3}) do
  redis.call('ZREM', KEYS[k], ARGV[2])
  if redis.call('ZCARD', KEYS[k]) == 0 then
    redis.call('SREM', KEYS[k+1], ARGV[1])
  end
end
return 0`)

// Op is one change to the projection.
type Op struct {
	kind int
	user string
	conv string
	seq  int64
}

const (
	opAdd = iota
	opRead
	opRemove
	opForget
	opRecalled
	opMention
)

// Add counts conv's message seq as unread for user.
func Add(user, conv string, seq int64) Op { return Op{opAdd, user, conv, seq} }

// Read moves user's read pointer in conv to seq (never back).
func Read(user, conv string, seq int64) Op { return Op{opRead, user, conv, seq} }

// Remove uncounts seq for user (its message was recalled).
func Remove(user, conv string, seq int64) Op { return Op{opRemove, user, conv, seq} }

// Forget drops user's state for conv (they left it).
func Forget(user, conv string) Op { return Op{opForget, user, conv, 0} }

// Recalled records that conv's message seq was recalled.
func Recalled(conv string, seq int64) Op { return Op{opRecalled, "", conv, seq} }

// Apply runs ops in one pipelined round trip. Every op is idempotent, so a
// redelivered batch changes nothing.
func (s *Store) Apply(ctx context.Context, ops []Op) error {
	_, err := s.apply(ctx, ops, false)
	return err
}

// ApplyBuilt is Apply with the check of Built in the same round trip: it
// reports whether the projection was there when ops ran. When it was not
// (Redis lost it), the ops ran on what is left and the caller rebuilds, then
// applies them again. A projector calls it for every batch, so a restarted
// Redis is noticed at the next batch without a round trip of its own.
func (s *Store) ApplyBuilt(ctx context.Context, ops []Op) (built bool, err error) {
	return s.apply(ctx, ops, true)
}

func (s *Store) apply(ctx context.Context, ops []Op, check bool) (built bool, err error) {
	if len(ops) == 0 {
		if check {
			return s.Built(ctx)
		}
		return true, nil
	}
	// Load the scripts once, so the pipeline can use EVALSHA; a restarted
	// Redis forgets them (NOSCRIPT), and the retried batch loads them again.
	if !s.loaded.Load() {
		for _, sc := range []*redis.Script{addScript, readScript, removeScript} {
			if err := sc.Load(ctx, s.rdb).Err(); err != nil {
				return false, fmt.Errorf("load unread scripts: %w", err)
			}
		}
		s.loaded.Store(true)
	}
	pipe := s.rdb.Pipeline()
	var marker *redis.IntCmd
	if check {
		// First in the pipeline: it sees Redis as the ops find it.
		marker = pipe.Exists(ctx, s.markerKey())
	}
	// A batch adds many seqs to the same (user, conversation): one script
	// call each, not one per seq. Another op on that pair first flushes
	// what was gathered, so the order of ops on a pair is kept.
	type pair struct{ user, conv string }
	adds := map[pair][]any{}
	flush := func(k pair) {
		if seqs := adds[k]; len(seqs) > 0 {
			args := append([]any{k.conv}, seqs...)
			addScript.EvalSha(ctx, pipe, []string{s.zkey(k.user, k.conv), s.convsKey(k.user), s.readKey(k.user)}, args...)
			delete(adds, k)
		}
	}
	for _, op := range ops {
		k := pair{op.user, op.conv}
		if op.kind == opAdd {
			adds[k] = append(adds[k], strconv.FormatInt(op.seq, 10))
			continue
		}
		flush(k)
		seq := strconv.FormatInt(op.seq, 10)
		switch op.kind {
		case opRead:
			readScript.EvalSha(ctx, pipe, []string{s.zkey(op.user, op.conv), s.convsKey(op.user), s.readKey(op.user), s.mentionKey(op.user, op.conv), s.mentionConvsKey(op.user)}, op.conv, seq)
		case opRemove:
			removeScript.EvalSha(ctx, pipe, []string{s.zkey(op.user, op.conv), s.convsKey(op.user), s.mentionKey(op.user, op.conv), s.mentionConvsKey(op.user)}, op.conv, seq)
		case opMention:
			// As an unread add, into the mention keys: not past the read pointer.
			addScript.EvalSha(ctx, pipe, []string{s.mentionKey(op.user, op.conv), s.mentionConvsKey(op.user), s.readKey(op.user)}, op.conv, seq)
		case opForget:
			pipe.Del(ctx, s.zkey(op.user, op.conv), s.mentionKey(op.user, op.conv))
			pipe.SRem(ctx, s.convsKey(op.user), op.conv)
			pipe.SRem(ctx, s.mentionConvsKey(op.user), op.conv)
			pipe.HDel(ctx, s.readKey(op.user), op.conv)
		case opRecalled:
			pipe.SAdd(ctx, s.recallKey(op.conv), seq)
		}
	}
	for k := range adds {
		flush(k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		if strings.Contains(err.Error(), "NOSCRIPT") {
			s.loaded.Store(false)
		}
		return false, fmt.Errorf("apply %d unread ops: %w", len(ops), err)
	}
	return marker == nil || marker.Val() == 1, nil
}

// Counts returns user's unread count per conversation, only those above zero.
func (s *Store) Counts(ctx context.Context, user string) (map[string]int64, error) {
	return s.counts(ctx, user, s.convsKey(user), s.zkey)
}

// counts returns the cardinalities of user's zsets (named by zkey) of the
// conversations in the set convsKey, only those above zero.
func (s *Store) counts(ctx context.Context, user, convsKey string, zkey func(user, conv string) string) (map[string]int64, error) {
	convs, err := s.rdb.SMembers(ctx, convsKey).Result()
	if err != nil {
		return nil, fmt.Errorf("unread conversations of %s: %w", user, err)
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(convs))
	for i, c := range convs {
		cmds[i] = pipe.ZCard(ctx, zkey(user, c))
	}
	if len(convs) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("unread counts of %s: %w", user, err)
		}
	}
	out := make(map[string]int64, len(convs))
	for i, c := range convs {
		if n := cmds[i].Val(); n > 0 {
			out[c] = n
		}
	}
	return out, nil
}

// IsRecalled reports whether conv's message seq was recalled.
func (s *Store) IsRecalled(ctx context.Context, conv string, seq int64) (bool, error) {
	ok, err := s.rdb.SIsMember(ctx, s.recallKey(conv), strconv.FormatInt(seq, 10)).Result()
	if err != nil {
		return false, fmt.Errorf("recall state of %s: %w", conv, err)
	}
	return ok, nil
}

// Clear deletes the whole projection (every key under the prefix that this
// package writes), for a rebuild.
func (s *Store) Clear(ctx context.Context) error {
	if err := s.rdb.Del(ctx, s.markerKey()).Err(); err != nil {
		return fmt.Errorf("clear unread: %w", err)
	}
	for _, pattern := range []string{s.prefix + "u:{*}:unread:*", s.prefix + "u:{*}:convs", s.prefix + "u:{*}:read", s.prefix + "c:{*}:recalled",
		s.prefix + "u:{*}:mention:*", s.prefix + "u:{*}:mconvs"} {
		iter := s.rdb.Scan(ctx, 0, pattern, 1000).Iterator()
		var batch []string
		for iter.Next(ctx) {
			batch = append(batch, iter.Val())
			if len(batch) == 500 {
				if err := s.rdb.Del(ctx, batch...).Err(); err != nil {
					return fmt.Errorf("clear unread: %w", err)
				}
				batch = batch[:0]
			}
		}
		if err := iter.Err(); err != nil {
			return fmt.Errorf("clear unread: %w", err)
		}
		if len(batch) > 0 {
			if err := s.rdb.Del(ctx, batch...).Err(); err != nil {
				return fmt.Errorf("clear unread: %w", err)
			}
		}
	}
	return nil
}
