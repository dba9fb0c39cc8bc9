package hooks

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/seqchat/seqchat/events"
	unreadprojector "github.com/seqchat/seqchat/internal/projector/unread"
	"github.com/seqchat/seqchat/timeline"
	"github.com/seqchat/seqchat/unread"
)

// OfflineConsumer is the offline push's durable consumer on TIMELINE (and
// its lease).
const OfflineConsumer = "push-offline"

// maxNotifications bounds one POST to the push URL.
const maxNotifications = 500

// Members answers who is in a conversation (postgres.MemberCache).
type Members interface {
	Get(ctx context.Context, conv string) (*events.Conv, error)
	Invalidate(conv string)
}

// Badges computes unread totals (unread.Store).
type Badges interface {
	Badges(ctx context.Context, keys []unread.BadgeKey) ([]unread.Badge, error)
}

// Notification is one offline member's notice of a message.
type Notification struct {
	User   string          `json:"user"`
	Conv   string          `json:"conv"`
	Seq    int64           `json:"seq"`
	From   string          `json:"from"`
	Body   json.RawMessage `json:"body"`
	Unread int64           `json:"unread"`
}

// Offline notifies, for each message event, the members other than the
// sender who have no live connection when it is handled (right after the
// event is appended, as fanout handles it, unless the hooks lag), with
// their unread total including it. A member who read the message by then
// is not notified.
//
// It is its own TIMELINE consumer, acked once the push URL took the
// notifications: nothing is lost to a restart, and notifications are only
// computed again (with what presence and read pointers say then) for a
// batch the push URL never acknowledged.
type Offline struct {
	js      jetstream.JetStream
	t       target
	members Members
	online  func(ctx context.Context, users []string) (map[string]bool, error)
	badges  Badges
	batch   int
	post    *poster
	log     *slog.Logger
	m       *Metrics
	// unreadFed, if set, tells how far the unread projection, fed in this
	// process (timeline.RunFed), has applied TIMELINE: it has no consumer
	// whose ack floor would.
	unreadFed Progress
}

// Progress tells how far a projection has applied TIMELINE
// (timeline.Feed).
type Progress interface {
	Applied() uint64
}

// FollowUnread has the offline push wait on p, the unread projection fed
// in this process, rather than on the unread consumer. Call it before Run.
func (o *Offline) FollowUnread(p Progress) { o.unreadFed = p }

// NewOffline returns the offline push to url.
func NewOffline(js jetstream.JetStream, url, secret string, members Members, online func(ctx context.Context, users []string) (map[string]bool, error), badges Badges, batch int, m *Metrics, log *slog.Logger) *Offline {
	return &Offline{
		js: js, t: newTarget("push", url), members: members, online: online, badges: badges,
		batch: min(max(batch, 1), 500), post: newPoster(secret, m, log), log: log, m: m,
	}
}

// Run notifies until ctx ends or the consumer must be set up again.
func (o *Offline) Run(ctx context.Context) error {
	cons, err := resetConsumer(ctx, o.js, OfflineConsumer, "offline push "+o.t.label, o.batch)
	if err != nil {
		return err
	}
	stop := watchPending(ctx, cons, o.m.pending.WithLabelValues(o.t.hook, o.t.label))
	defer stop()
	return timeline.ConsumeEvents(ctx, cons, o.batch, o.log, func(ctx context.Context, b *timeline.Events) error {
		o.waitUnread(ctx, b.FirstStreamSeq()-1)
		list, err := o.notifications(ctx, b.Stored)
		if err != nil {
			return err
		}
		for len(list) > 0 {
			n := min(len(list), maxNotifications)
			body, _ := json.Marshal(map[string]any{"notifications": list[:n]})
			if err := o.post.deliver(ctx, o.t, body, n, b.InProgress); err != nil {
				return err
			}
			list = list[n:]
		}
		b.Ack()
		return nil
	})
}

// notifications computes a batch's notifications: one presence round trip
// and two Redis round trips for the badges, whatever the batch holds.
func (o *Offline) notifications(ctx context.Context, stored []timeline.Stored) ([]Notification, error) {
	type pending struct {
		ev events.Event
		to []string
	}
	var todo []pending
	recalled := map[string]map[int64]bool{}
	users := map[string]struct{}{}
	for _, s := range stored {
		ev := s.Event
		switch ev.Kind {
		case events.KindMemberJoined, events.KindMemberLeft:
			o.members.Invalidate(ev.Conv)
		case events.KindRecall:
			if recalled[ev.Conv] == nil {
				recalled[ev.Conv] = map[int64]bool{}
			}
			recalled[ev.Conv][ev.Target] = true
		case events.KindMessage:
			cv, err := o.members.Get(ctx, ev.Conv)
			if events.IsCode(err, events.CodeNotFound) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("members of %s: %w", ev.Conv, err)
			}
			to := unread.Recipients(cv, ev)
			for _, u := range to {
				users[u] = struct{}{}
			}
			todo = append(todo, pending{ev: ev, to: to})
		}
	}
	if len(todo) == 0 {
		return nil, nil
	}
	list := make([]string, 0, len(users))
	for u := range users {
		list = append(list, u)
	}
	online, err := o.online(ctx, list)
	if err != nil {
		return nil, fmt.Errorf("presence: %w", err)
	}
	var keys []unread.BadgeKey
	var out []Notification
	for _, p := range todo {
		if recalled[p.ev.Conv][p.ev.Seq] {
			continue // recalled within the batch: nothing to ring for
		}
		for _, u := range p.to {
			if online[u] {
				continue
			}
			keys = append(keys, unread.BadgeKey{User: u, Conv: p.ev.Conv, Seq: p.ev.Seq})
			out = append(out, Notification{User: u, Conv: p.ev.Conv, Seq: p.ev.Seq, From: p.ev.From, Body: p.ev.Body})
		}
	}
	badges, err := o.badges.Badges(ctx, keys)
	if err != nil {
		return nil, err
	}
	kept := out[:0]
	for i, n := range out {
		if badges[i].Read {
			continue
		}
		n.Unread = badges[i].Unread
		kept = append(kept, n)
	}
	return kept, nil
}

// unreadWait bounds how long a batch waits for the unread projection.
const unreadWait = 5 * time.Second

// waitUnread waits until the unread projector has applied TIMELINE up to
// stream seq, so that badges count every earlier message (the batch's own
// messages are counted by Badges). A stalled projector delays notifications
// by unreadWait at most; their badges may be low then.
func (o *Offline) waitUnread(ctx context.Context, seq uint64) {
	deadline := time.Now().Add(unreadWait)
	applied := func() bool {
		if o.unreadFed != nil {
			return o.unreadFed.Applied() >= seq
		}
		// Looking the consumer up reads its current state: one round trip.
		cons, err := o.js.Consumer(ctx, timeline.TimelineStream, unreadprojector.ConsumerName)
		return err == nil && cons.CachedInfo().AckFloor.Stream >= seq
	}
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		if applied() {
			return
		}
		if time.Now().After(deadline) {
			o.log.Warn("unread projection lags; badges may be low", "want", seq)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
