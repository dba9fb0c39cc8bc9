package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
)

// EnsureUser returns the id of username, creating the user under newID,
// without a password, when there is none: how the app's backend signs in
// a user it authenticated itself.
func (a *Accounts) EnsureUser(ctx context.Context, newID, username string) (string, error) {
	var id string
	err := a.pool.QueryRow(ctx, "SELECT id FROM users WHERE username=$1", username).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		err = a.pool.QueryRow(ctx, "INSERT INTO users (id, username, password_hash) VALUES ($1, $2, NULL) ON CONFLICT (username) DO NOTHING RETURNING id",
			newID, username).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			// Two first sign-ins at once create the user once: the loser of
			// the race reads the winner's row (committed by now: the insert
			// waited for it).
			err = a.pool.QueryRow(ctx, "SELECT id FROM users WHERE username=$1", username).Scan(&id)
		}
	}
	if err != nil {
		return "", unavailable("sign in user", err)
	}
	return id, nil
}
