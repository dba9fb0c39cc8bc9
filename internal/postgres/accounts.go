package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seqchat/seqchat/events"
)

// Accounts keeps the users: their names and password hashes.
type Accounts struct{ pool *pgxpool.Pool }

// NewAccounts returns the accounts kept in pool.
func NewAccounts(pool *pgxpool.Pool) *Accounts { return &Accounts{pool: pool} }

// User is one account as others see it.
type User struct {
	ID       string
	Username string
}

// CreateUser adds a user with a password hash; a taken username is a
// conflict.
func (a *Accounts) CreateUser(ctx context.Context, id, username, passwordHash string) error {
	_, err := a.pool.Exec(ctx, "INSERT INTO users (id, username, password_hash) VALUES ($1, $2, $3)", id, username, passwordHash)
	if isUniqueViolation(err) {
		return events.Errorf(events.CodeConflict, "username %q is taken", username)
	}
	if err != nil {
		return unavailable("create user", err)
	}
	return nil
}

// Credentials returns username's id and password hash. The hash is empty
// when there is no such user, or when the user was created by the app's
// backend (serverusers.go) and no password logs in as them.
func (a *Accounts) Credentials(ctx context.Context, username string) (id, hash string, err error) {
	err = a.pool.QueryRow(ctx, "SELECT id, coalesce(password_hash, '') FROM users WHERE username=$1", username).Scan(&id, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", nil
	}
	if err != nil {
		return "", "", unavailable("look up user", err)
	}
	return id, hash, nil
}

// Username returns id's username; ok is false when the user does not exist.
func (a *Accounts) Username(ctx context.Context, id string) (name string, ok bool, err error) {
	err = a.pool.QueryRow(ctx, "SELECT username FROM users WHERE id=$1", id).Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, unavailable("look up user", err)
	}
	return name, true, nil
}

// ResolveUser returns the id of the user ref names, by id or by username
// (an id wins); not_found when there is none.
func (a *Accounts) ResolveUser(ctx context.Context, ref string) (string, error) {
	var id string
	err := a.pool.QueryRow(ctx, "SELECT id FROM users WHERE id=$1 OR username=$1 ORDER BY id=$1 DESC LIMIT 1", ref).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", events.Errorf(events.CodeNotFound, "no user %q", ref)
	}
	if err != nil {
		return "", unavailable("look up user", err)
	}
	return id, nil
}

// CountExisting returns how many of ids are users.
func (a *Accounts) CountExisting(ctx context.Context, ids []string) (int, error) {
	var n int
	if err := a.pool.QueryRow(ctx, "SELECT count(*) FROM users WHERE id = ANY($1)", ids).Scan(&n); err != nil {
		return 0, unavailable("look up members", err)
	}
	return n, nil
}
