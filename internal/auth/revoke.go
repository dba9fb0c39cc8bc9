package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/seqchat/seqchat/events"
)

// RevokedSubject is the core NATS subject every api and edge listens on for
// logouts, so a revoked token stops working everywhere at once.
const RevokedSubject = "chat.sessions.revoked"

// revocation is what travels on RevokedSubject.
type revocation struct {
	Session string    `json:"session"`
	User    string    `json:"user"`
	Expires time.Time `json:"expires"`
}

// Revocations is the set of logged-out sessions, held in memory so that the
// check on every request and connection costs no round trip. Postgres
// (revoked_sessions) is its durable copy: the set is loaded from it at start
// and reloaded now and then, in case a NATS message was missed while this
// process was disconnected. An entry lives until the token would have
// expired anyway.
type Revocations struct {
	store RevocationStore
	nc    *nats.Conn
	log   *slog.Logger
	sub   *nats.Subscription

	mu       sync.RWMutex
	sessions map[string]time.Time // session id to the token's expiry
	watchers []func(session, user string)
}

// RevocationStore is the durable copy of the revocations
// (internal/postgres's Sessions).
type RevocationStore interface {
	// Revoke stores session's revocation; its token expires at expires.
	Revoke(ctx context.Context, session string, expires time.Time) error
	// Revoked returns the stored revocations whose tokens have not
	// expired, session id to expiry.
	Revoked(ctx context.Context) (map[string]time.Time, error)
	// DeleteExpired forgets the revocations of expired tokens.
	DeleteExpired(ctx context.Context) error
}

// NewRevocations subscribes to revocations, then loads the stored ones (in
// that order, so none falls between the two).
func NewRevocations(ctx context.Context, store RevocationStore, nc *nats.Conn, log *slog.Logger) (*Revocations, error) {
	r := &Revocations{store: store, nc: nc, log: log, sessions: map[string]time.Time{}}
	sub, err := nc.Subscribe(RevokedSubject, r.receive)
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", RevokedSubject, err)
	}
	r.sub = sub
	if err := r.load(ctx); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	return r, nil
}

// Close stops listening.
func (r *Revocations) Close() { _ = r.sub.Unsubscribe() }

// Watch calls fn (on NATS's goroutine: it must not block) for every session
// revoked from now on, here or on another replica.
func (r *Revocations) Watch(fn func(session, user string)) {
	r.mu.Lock()
	r.watchers = append(r.watchers, fn)
	r.mu.Unlock()
}

// Revoked reports whether session was logged out.
func (r *Revocations) Revoked(session string) bool {
	r.mu.RLock()
	_, ok := r.sessions[session]
	r.mu.RUnlock()
	return ok
}

// Check answers unauthorized for a logged-out session.
func (r *Revocations) Check(c Claims) error {
	if r.Revoked(c.SessionID) {
		return events.LoggedOut()
	}
	return nil
}

// Revoke logs c's session out: stored first (it must survive a restart),
// then in this process, then announced to every replica.
func (r *Revocations) Revoke(ctx context.Context, c Claims) error {
	if err := r.store.Revoke(ctx, c.SessionID, c.ExpiresAt); err != nil {
		return err
	}
	rv := revocation{Session: c.SessionID, User: c.UserID, Expires: c.ExpiresAt}
	r.add(rv)
	b, _ := json.Marshal(rv)
	// Every replica answers once it holds the revocation (and has closed
	// the session's sockets). The logout is answered when the answers stop
	// coming, so that "at once" holds for every replica NATS reaches; one
	// that is cut off gets it at its next reload from Postgres.
	inbox := r.nc.NewInbox()
	sub, err := r.nc.SubscribeSync(inbox)
	if err == nil {
		defer sub.Unsubscribe()
		err = r.nc.PublishMsg(&nats.Msg{Subject: RevokedSubject, Reply: inbox, Data: b})
	}
	if err != nil {
		r.log.Warn("announce revocation", "err", err)
		return nil
	}
	wait := ackWait // the first answer (ours, at least) may take a while
	for {
		if _, err := sub.NextMsg(wait); err != nil {
			return nil
		}
		wait = ackGap
	}
}

// How long a logout waits for the replicas' answers: at most ackWait for the
// first, then while they keep coming at most ackGap apart.
const (
	ackWait = 500 * time.Millisecond
	ackGap  = 25 * time.Millisecond
)

func (r *Revocations) receive(m *nats.Msg) {
	var rv revocation
	if err := json.Unmarshal(m.Data, &rv); err != nil || rv.Session == "" {
		r.log.Warn("undecodable revocation; dropped")
		return
	}
	r.add(rv)
	if m.Reply != "" {
		_ = m.Respond(nil)
	}
}

// add records rv and tells the watchers, once per session.
func (r *Revocations) add(rv revocation) {
	r.mu.Lock()
	_, seen := r.sessions[rv.Session]
	r.sessions[rv.Session] = rv.Expires
	watchers := r.watchers
	r.mu.Unlock()
	if seen {
		return
	}
	for _, fn := range watchers {
		fn(rv.Session, rv.User)
	}
}

// load adds every unexpired stored revocation.
func (r *Revocations) load(ctx context.Context) error {
	loaded, err := r.store.Revoked(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	for s, exp := range loaded {
		r.sessions[s] = exp // no watchers: sockets of these were refused or closed already
	}
	r.mu.Unlock()
	return nil
}

// reloadEvery is how often Run reloads the stored revocations: a session
// revoked during a NATS outage is refused within this long of it.
const reloadEvery = 30 * time.Second

// Run reloads the stored revocations every reloadEvery (a safety net for
// announcements missed during a NATS outage) and forgets expired ones, in
// memory and in Postgres, until ctx ends.
func (r *Revocations) Run(ctx context.Context) error {
	t := time.NewTicker(reloadEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := time.Now()
		r.mu.Lock()
		for s, exp := range r.sessions {
			if exp.Before(now) {
				delete(r.sessions, s)
			}
		}
		r.mu.Unlock()
		lctx, cancel := context.WithTimeout(ctx, reloadEvery)
		if err := r.load(lctx); err != nil && ctx.Err() == nil {
			r.log.Warn("reload revoked sessions", "err", err)
		}
		// Any replica may tidy up; a token past its expiry fails anyway.
		_ = r.store.DeleteExpired(lctx)
		cancel()
	}
}
