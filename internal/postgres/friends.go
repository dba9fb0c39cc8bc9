package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// FriendIDs lists the ids of user's friends: whom the edge tells when the
// user comes online or goes offline.
func FriendIDs(ctx context.Context, pool *pgxpool.Pool, user string) ([]string, error) {
	rows, err := pool.Query(ctx, "SELECT friend_id FROM friends WHERE user_id=$1", user)
	if err != nil {
		return nil, fmt.Errorf("list friends: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list friends: %w", err)
	}
	return ids, nil
}
