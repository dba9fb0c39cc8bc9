package postgres

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/seqchat/seqchat/events"
)

// unavailable wraps a failed statement: the client may retry. what says what
// was being done, in the client's words.
func unavailable(what string, err error) error {
	return events.StoreUnavailable(what, err)
}

// isUniqueViolation reports whether err is Postgres refusing a duplicate key.
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}
