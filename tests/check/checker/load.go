package checker

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
)

// Sources say where the state lives. An empty URL skips that store.
type Sources struct {
	NATS        string // comma-separated URLs
	Postgres    string
	Redis       string
	RedisPrefix string
	// Convs, when not nil, loads only these conversations' history rows and
	// unread sets (TIMELINE is read whole).
	Convs map[string]bool
}

// LoadState reads the final state from the running stores.
func LoadState(ctx context.Context, src Sources) (State, error) {
	var st State
	var err error
	if src.NATS != "" {
		if st.Timeline, err = LoadTimeline(ctx, src.NATS); err != nil {
			return st, err
		}
	}
	if src.Postgres != "" {
		if st.History, st.Members, err = LoadPostgres(ctx, src.Postgres, src.Convs); err != nil {
			return st, err
		}
		st.HistoryLoaded = true
	}
	if src.Redis != "" {
		if st.Unread, err = LoadUnread(ctx, src.Redis, src.RedisPrefix, src.Convs); err != nil {
			return st, err
		}
		st.UnreadLoaded = true
	}
	return st, nil
}

// LoadTimeline reads every event of the TIMELINE stream, in stream order,
// up to the last one stored when it starts. It tries the cluster's servers
// one by one: a server that has just restarted may not serve consumers yet.
func LoadTimeline(ctx context.Context, urls string) ([]Event, error) {
	var errs []string
	for _, u := range strings.Split(urls, ",") {
		evs, err := loadTimeline(ctx, strings.TrimSpace(u))
		if err == nil {
			return evs, nil
		}
		errs = append(errs, fmt.Sprintf("%s: %v", u, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("read TIMELINE: %s", strings.Join(errs, "; "))
}

func loadTimeline(ctx context.Context, url string) ([]Event, error) {
	nc, err := nats.Connect(url, nats.Name("seqchat-check"), nats.NoReconnect())
	if err != nil {
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	stream, err := js.Stream(ctx, "TIMELINE")
	if err != nil {
		return nil, fmt.Errorf("open TIMELINE: %w", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("TIMELINE info: %w", err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return nil, nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("TIMELINE consumer: %w", err)
	}
	out := make([]Event, 0, info.State.Msgs)
	for {
		b, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, fmt.Errorf("read TIMELINE: %w", err)
		}
		n := 0
		for m := range b.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			var e Event
			if err := json.Unmarshal(m.Data(), &e); err != nil {
				return nil, fmt.Errorf("TIMELINE #%d: %w", md.Sequence.Stream, err)
			}
			e.StreamSeq = md.Sequence.Stream
			out = append(out, e)
			if md.Sequence.Stream >= last {
				return out, nil
			}
		}
		if err := b.Error(); err != nil {
			return nil, fmt.Errorf("read TIMELINE: %w", err)
		}
		if n == 0 {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			// Nothing more within the wait: the stream's tail was removed
			// meanwhile (limits), or the consumer is slow; check again.
			info, err := stream.Info(ctx)
			if err != nil {
				return nil, err
			}
			if len(out) > 0 && out[len(out)-1].StreamSeq >= info.State.LastSeq {
				return out, nil
			}
		}
	}
}

// LoadPostgres reads the history projection and the members with their
// read pointers.
func LoadPostgres(ctx context.Context, url string, convs map[string]bool) ([]Row, []Member, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(ctx)
	var filter []string
	if convs != nil {
		for c := range convs {
			filter = append(filter, c)
		}
	}
	where, args := "", []any{}
	if convs != nil {
		where, args = " WHERE conv_id = ANY($1)", []any{filter}
	}
	rows, err := conn.Query(ctx, "SELECT conv_id, seq, kind, cmd_id, sender, body, target, member, recalled FROM events"+where, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("read history: %w", err)
	}
	var hist []Row
	for rows.Next() {
		var r Row
		if err := rows.Scan(&r.Conv, &r.Seq, &r.Kind, &r.CmdID, &r.Sender, &r.Body, &r.Target, &r.Member, &r.Recalled); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("read history: %w", err)
		}
		hist = append(hist, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read history: %w", err)
	}
	rows, err = conn.Query(ctx, "SELECT conv_id, user_id, joined_seq, read_seq FROM members"+where, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("read members: %w", err)
	}
	members, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Member, error) {
		var m Member
		err := row.Scan(&m.Conv, &m.User, &m.JoinedSeq, &m.ReadSeq)
		return m, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read members: %w", err)
	}
	return hist, members, nil
}

// LoadUnread reads every unread set under prefix (keys
// <prefix>u:{<user>}:unread:<conv>, members the unread seqs).
func LoadUnread(ctx context.Context, url, prefix string, convs map[string]bool) (map[string]map[string][]int64, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	out := map[string]map[string][]int64{}
	iter := rdb.Scan(ctx, 0, prefix+"u:{*}:unread:*", 1000).Iterator()
	type item struct{ user, conv, key string }
	var items []item
	for iter.Next(ctx) {
		k := iter.Val()
		rest := strings.TrimPrefix(k, prefix+"u:{")
		i := strings.Index(rest, "}:unread:")
		if i < 0 {
			continue
		}
		user, conv := rest[:i], rest[i+len("}:unread:"):]
		if convs != nil && !convs[conv] {
			continue
		}
		items = append(items, item{user, conv, k})
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("scan unread sets: %w", err)
	}
	for start := 0; start < len(items); start += 500 {
		chunk := items[start:min(start+500, len(items))]
		pipe := rdb.Pipeline()
		cmds := make([]*redis.StringSliceCmd, len(chunk))
		for i, it := range chunk {
			cmds[i] = pipe.ZRange(ctx, it.key, 0, -1)
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return nil, fmt.Errorf("read unread sets: %w", err)
		}
		for i, it := range chunk {
			vals, _ := cmds[i].Result()
			seqs := make([]int64, 0, len(vals))
			for _, v := range vals {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("unread set %s: member %q is not a seq", it.key, v)
				}
				seqs = append(seqs, n)
			}
			if out[it.user] == nil {
				out[it.user] = map[string][]int64{}
			}
			out[it.user][it.conv] = seqs
		}
	}
	return out, nil
}
