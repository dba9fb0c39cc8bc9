// Command check verifies a recorded run of the chat system against the
// invariants of docs/architecture.md: it reads a JSON-lines history of what the
// clients sent and received (the record types are documented in package
// tests/check/checker) and the final state of TIMELINE, the Postgres history
// and the Redis unread sets, and prints every violation it finds, as counts
// with examples.
//
//	go run ./tests/check -history run.jsonl -nats nats://127.0.0.1:4222 \
//	    -postgres postgres://postgres@127.0.0.1:5432/chat?sslmode=disable \
//	    -redis redis://127.0.0.1:6379/0 -redis-prefix ''
//
// It exits 0 when nothing is violated, 1 when something is, 2 when it could
// not check. Leave -postgres or -redis empty to skip that projection.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/seqchat/seqchat/tests/check/checker"
)

func main() {
	historyPath := flag.String("history", "", "JSON-lines history file (- for stdin)")
	natsURL := flag.String("nats", "nats://127.0.0.1:4222", "NATS URLs, comma separated (TIMELINE)")
	pgURL := flag.String("postgres", "", "Postgres URL of the deployment (history and members); empty: skip")
	redisURL := flag.String("redis", "", "Redis URL (unread sets); empty: skip")
	prefix := flag.String("redis-prefix", "", "the deployment's CHAT_REDIS_PREFIX")
	onlyHistory := flag.Bool("only-history-convs", false, "check the stores only for the conversations the history mentions")
	timeout := flag.Duration("timeout", 2*time.Minute, "how long loading the state may take")
	flag.Parse()
	if err := run(*historyPath, *natsURL, *pgURL, *redisURL, *prefix, *onlyHistory, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "check:", err)
		os.Exit(2)
	}
}

func run(historyPath, natsURL, pgURL, redisURL, prefix string, onlyHistory bool, timeout time.Duration) error {
	var hist []checker.Record
	if historyPath != "" {
		f := os.Stdin
		if historyPath != "-" {
			var err error
			if f, err = os.Open(historyPath); err != nil {
				return err
			}
			defer f.Close()
		}
		var err error
		if hist, err = checker.ReadHistory(f); err != nil {
			return err
		}
	}
	var convs map[string]bool
	if onlyHistory {
		convs = checker.Convs(hist)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	st, err := checker.LoadState(ctx, checker.Sources{NATS: natsURL, Postgres: pgURL, Redis: redisURL, RedisPrefix: prefix, Convs: convs})
	if err != nil {
		return err
	}
	rep := checker.Check(hist, st, checker.Options{Convs: convs})
	fmt.Print(rep.String())
	if !rep.OK() {
		os.Exit(1)
	}
	return nil
}
