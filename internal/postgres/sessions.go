package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seqchat/seqchat/events"
)

// Sessions keeps the logged-out sessions (revoked_sessions), each until its
// token would have expired anyway.
type Sessions struct{ pool *pgxpool.Pool }

// NewSessions returns the revocations kept in pool.
func NewSessions(pool *pgxpool.Pool) *Sessions { return &Sessions{pool: pool} }

// Revoke records that session was logged out; its token expires at expires.
func (s *Sessions) Revoke(ctx context.Context, session string, expires time.Time) error {
	_, err := s.pool.Exec(ctx, "INSERT INTO revoked_sessions (session_id, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING", session, expires)
	if err != nil {
		return unavailable("revoke session", err)
	}
	return nil
}

// IsRevoked reports whether session was logged out.
func (s *Sessions) IsRevoked(ctx context.Context, session string) (bool, error) {
	var revoked bool
	err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM revoked_sessions WHERE session_id=$1)", session).Scan(&revoked)
	if err != nil {
		return false, unavailable("check session", err)
	}
	return revoked, nil
}

// Revoked returns every revoked session whose token has not expired, with
// its expiry.
func (s *Sessions) Revoked(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.pool.Query(ctx, "SELECT session_id, expires_at FROM revoked_sessions WHERE expires_at > now()")
	if err != nil {
		return nil, events.WrapError(events.CodeUnavailable, err, "load revoked sessions")
	}
	defer rows.Close()
	loaded := map[string]time.Time{}
	for rows.Next() {
		var id string
		var exp time.Time
		if err := rows.Scan(&id, &exp); err != nil {
			return nil, events.WrapError(events.CodeUnavailable, err, "load revoked sessions")
		}
		loaded[id] = exp
	}
	if err := rows.Err(); err != nil {
		return nil, events.WrapError(events.CodeUnavailable, err, "load revoked sessions")
	}
	return loaded, nil
}

// DeleteExpired forgets the sessions whose tokens expired over a minute ago.
func (s *Sessions) DeleteExpired(ctx context.Context) error {
	if _, err := s.pool.Exec(ctx, "DELETE FROM revoked_sessions WHERE expires_at < now() - interval '1 minute'"); err != nil {
		return events.WrapError(events.CodeUnavailable, err, "delete expired sessions")
	}
	return nil
}
