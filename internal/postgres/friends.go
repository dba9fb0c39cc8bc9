package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Friends keeps who is friends with whom. Friendship is mutual: one row
// each way.
type Friends struct{ pool *pgxpool.Pool }

// NewFriends returns the friendships kept in pool.
func NewFriends(pool *pgxpool.Pool) *Friends { return &Friends{pool: pool} }

// Add makes user and friend friends (again: no error when they are).
func (f *Friends) Add(ctx context.Context, user, friend string) error {
	_, err := f.pool.Exec(ctx, `INSERT INTO friends (user_id, friend_id) VALUES ($1, $2), ($2, $1) ON CONFLICT DO NOTHING`, user, friend)
	if err != nil {
		return unavailable("add friend", err)
	}
	return nil
}

// Remove ends user and friend's friendship, both ways.
func (f *Friends) Remove(ctx context.Context, user, friend string) error {
	_, err := f.pool.Exec(ctx, `DELETE FROM friends WHERE (user_id=$1 AND friend_id=$2) OR (user_id=$2 AND friend_id=$1)`, user, friend)
	if err != nil {
		return unavailable("remove friend", err)
	}
	return nil
}

// List returns user's friends by username.
func (f *Friends) List(ctx context.Context, user string) ([]User, error) {
	rows, err := f.pool.Query(ctx, `SELECT u.id, u.username FROM friends f JOIN users u ON u.id=f.friend_id
		WHERE f.user_id=$1 ORDER BY u.username`, user)
	if err != nil {
		return nil, unavailable("list friends", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (User, error) {
		var u User
		return u, row.Scan(&u.ID, &u.Username)
	})
	if err != nil {
		return nil, unavailable("list friends", err)
	}
	return list, nil
}

// IDs lists the ids of user's friends: whom the edge tells when the user
// comes online or goes offline.
func (f *Friends) IDs(ctx context.Context, user string) ([]string, error) {
	rows, err := f.pool.Query(ctx, "SELECT friend_id FROM friends WHERE user_id=$1", user)
	if err != nil {
		return nil, unavailable("list friends", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, unavailable("list friends", err)
	}
	return ids, nil
}
