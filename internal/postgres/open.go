// Package postgres is the Postgres store: all of the system's SQL lives here
// (TestNoSQLOutsideStore holds that), one small type per concern built on the
// pool Open returns, each in a file named for what it keeps (History alone
// also reads TIMELINE, for what the projector has not written yet). The
// roles take interfaces of their own that these types satisfy. Failures come
// back with the protocol's codes: unavailable when Postgres cannot be asked,
// conflict for a duplicate, not_found for what is not there.
//
// Open opens the pool every role shares: it creates the database when
// missing and applies the migrations.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seqchat/seqchat/migrations"
)

// Pool is the connection pool the stores are opened on. Code that only
// hands it from Open to the stores (the wiring) names it here and needs
// no pgx of its own.
type Pool = pgxpool.Pool

// Open connects to dsn, creating its database if it does not exist, and
// brings the schema up to date.
func Open(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	if err := createDatabase(ctx, dsn); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse postgres url: %w", err)
	}
	if cfg.MaxConns < 8 {
		cfg.MaxConns = 8
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if err := migrations.Apply(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// createDatabase creates dsn's database through the maintenance database.
func createDatabase(ctx context.Context, dsn string) error {
	u, err := url.Parse(dsn)
	if err != nil {
		return fmt.Errorf("parse postgres url: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" || name == "postgres" {
		return nil
	}
	u.Path = "/postgres"
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname=$1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // created meanwhile by another process
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}
