package activity

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Transitions: a user goes online when their first connection opens and
// offline when their last one closes or times out, once each, whatever the
// number of devices and edges. Each user has a marker key
// "<prefix>presence:{<user>}:on" beside the hash (same hash tag, so one Lua
// script may touch both on Redis Cluster): a script that adds a connection
// sets it with SET NX and reports a transition only when it created it; a
// script that removes a connection (or prunes expired ones) deletes it when
// no live entry is left and reports a transition only when it deleted it.
// Scripts run atomically, so exactly one caller sees each transition.
//
// An edge that dies removes nothing: its users' entries simply stop being
// refreshed. So that someone still announces them offline, every Add also
// raises the user's deadline (the latest "until" of any entry) in one
// sorted set, "<prefix>presence:deadlines"; Sweep (run by every live edge)
// picks the users whose deadline has passed and runs the prune script on
// them. Whoever deletes the marker first reports the transition.

// connectScript records a connection; it returns 1 when the user was offline.
var connectScript = redis.NewScript(`
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if redis.call('SET', KEYS[2], '1', 'NX') then return 1 end
return 0`)

// pruneScript removes the connection ARGV[2] (if not empty) and every entry
// past its time ARGV[1]; it returns {went offline (0/1), latest until left}.
var pruneScript = redis.NewScript(`
if ARGV[2] ~= '' then redis.call('HDEL', KEYS[1], ARGV[2]) end
local now = tonumber(ARGV[1])
local latest = 0
local f = redis.call('HGETALL', KEYS[1])
for i = 1, #f, 2 do
  local u = tonumber(f[i+1]) or 0
  if u < now then
    redis.call('HDEL', KEYS[1], f[i])
  elseif u > latest then
    latest = u
  end
end
if latest == 0 and redis.call('DEL', KEYS[2]) == 1 then return {1, 0} end
return {0, latest}`)

// forgetScript drops a user from the deadlines once they are offline, unless
// a connection raised their deadline meanwhile.
var forgetScript = redis.NewScript(`
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) < tonumber(ARGV[2]) then redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0`)

func (s *Presence) markerKey(user string) string { return s.key(user) + ":on" }
func (s *Presence) deadlinesKey() string         { return s.prefix + "presence:deadlines" }

// Connect records a new connection of edge and reports whether it is the
// user's first live one (they went online).
func (s *Presence) Connect(ctx context.Context, edge string, c Conn) (online bool, err error) {
	until := s.now().Add(s.ttl).UnixMilli()
	var res *redis.Cmd
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		res = connectScript.Eval(ctx, p, []string{s.key(c.User), s.markerKey(c.User)},
			field(edge, c.ID), until, s.ttl.Milliseconds())
		p.ZAddGT(ctx, s.deadlinesKey(), redis.Z{Score: float64(until), Member: c.User})
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("record connection: %w", err)
	}
	if s.announce != nil {
		s.announce(ctx, c.User, edge)
	}
	n, _ := res.Int()
	return n == 1, nil
}

// Disconnect forgets a closed connection of edge and reports whether it was
// the user's last live one (they went offline).
func (s *Presence) Disconnect(ctx context.Context, edge string, c Conn) (offline bool, err error) {
	offline, _, err = s.pruneUser(ctx, c.User, field(edge, c.ID))
	if err != nil {
		return false, fmt.Errorf("remove connection: %w", err)
	}
	return offline, nil
}

func (s *Presence) pruneUser(ctx context.Context, user, f string) (offline bool, latest int64, err error) {
	v, err := pruneScript.Run(ctx, s.rdb, []string{s.key(user), s.markerKey(user)},
		s.now().UnixMilli(), f).Int64Slice()
	if err != nil {
		return false, 0, err
	}
	if len(v) != 2 {
		return false, 0, fmt.Errorf("prune script answered %v", v)
	}
	return v[0] == 1, v[1], nil
}

// Sweep announces the users whose every entry expired (their edges died or
// lost Redis): it returns those it took offline, at most limit of them per
// call. Any number of edges may sweep at once; each transition goes to one.
func (s *Presence) Sweep(ctx context.Context, limit int) ([]string, error) {
	now := s.now().UnixMilli()
	users, err := s.rdb.ZRangeByScore(ctx, s.deadlinesKey(), &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(now-1, 10), Count: int64(limit),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("list expired presence: %w", err)
	}
	var gone []string
	for _, u := range users {
		offline, latest, err := s.pruneUser(ctx, u, "")
		if err != nil {
			return gone, fmt.Errorf("sweep presence: %w", err)
		}
		if offline {
			gone = append(gone, u)
		}
		if latest > 0 {
			// Still online elsewhere: come back when that entry expires.
			err = s.rdb.ZAddGT(ctx, s.deadlinesKey(), redis.Z{Score: float64(latest), Member: u}).Err()
		} else {
			err = forgetScript.Run(ctx, s.rdb, []string{s.deadlinesKey()}, u, now).Err()
		}
		if err != nil && err != redis.Nil {
			return gone, fmt.Errorf("sweep presence: %w", err)
		}
	}
	return gone, nil
}

// SweepEvery is how often edges sweep for a store of this TTL: a user whose
// edge died is offline within TTL + TTL/10 of its last refresh.
func (s *Presence) SweepEvery() time.Duration { return max(s.ttl/10, 5*time.Millisecond) }

// Refresh rewrites the entries of conns held by edge (Add), and returns the
// users among them whose online marker was gone: a refresh that came too
// late let a sweeper announce them offline, so they are announced online
// again rather than left online without a marker.
func (s *Presence) Refresh(ctx context.Context, edge string, conns ...Conn) ([]string, error) {
	if len(conns) == 0 {
		return nil, nil
	}
	if err := s.Add(ctx, edge, conns...); err != nil {
		return nil, err
	}
	users := make([]string, 0, len(conns))
	seen := map[string]bool{}
	for _, c := range conns {
		if !seen[c.User] {
			seen[c.User] = true
			users = append(users, c.User)
		}
	}
	cmds := make([]*redis.BoolCmd, len(users))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, u := range users {
			cmds[i] = p.SetNX(ctx, s.markerKey(u), "1", 0)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("refresh presence markers: %w", err)
	}
	var back []string
	for i, c := range cmds {
		if c.Val() {
			back = append(back, users[i])
		}
	}
	return back, nil
}
