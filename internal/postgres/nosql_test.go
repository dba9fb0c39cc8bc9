package postgres

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Where SQL may be written besides this package: the schema, the test
// harness that makes databases, and the system tests (which read the
// store to check it).
var sqlAllowed = []string{"internal/postgres", "migrations", "internal/testenv", "tests"}

// sqlStatement matches a string literal that is an SQL statement (or its
// start): the keyword with what must follow it, so that "DELETE /v1/…"
// routes or "with" in prose do not count.
var sqlStatement = regexp.MustCompile(`(?is)^[\s(]*(` +
	`select\s+.*\bfrom\b|select\s+(\d|\$|\*|exists\b|count\s*\(|coalesce\s*\(|now\s*\(|pg_)` +
	`|insert\s+into\s` +
	`|update\s+[\w."]+\s+set\s` +
	`|delete\s+from\s` +
	`|with\s+(recursive\s+)?[\w"]+\s*(\([^)]*\)\s*)?as\s*((not\s+)?materialized\s*)?\(` +
	`|(create|alter|drop)\s+(table|index|database|schema|view|sequence|function|trigger|extension)\b` +
	`|truncate\s` +
	`)`)

// TestNoSQLOutsideStore holds the rule that all SQL lives in this package:
// no other production file imports pgx or spells a statement.
func TestNoSQLOutsideStore(t *testing.T) {
	root := moduleRoot(t)
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			name := d.Name()
			if rel != "." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "node_modules" || name == "vendor") {
				return filepath.SkipDir
			}
			if slices.Contains(sqlAllowed, rel) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		hits, err := sqlIn(path, rel)
		if err != nil {
			return err
		}
		found = append(found, hits...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) > 0 {
		t.Errorf("SQL outside internal/postgres (move it into a store there):\n%s", strings.Join(found, "\n"))
	}
}

// sqlIn lists where the Go file at path imports pgx or holds an SQL
// statement, as rel:line: what.
func sqlIn(path, rel string) ([]string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var hits []string
	at := func(pos token.Pos, what string) {
		hits = append(hits, rel+":"+strconv.Itoa(fset.Position(pos).Line)+": "+what)
	}
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); strings.HasPrefix(p, "github.com/jackc/pgx") {
			at(imp.Pos(), "imports "+p)
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		lit, ok := n.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return true
		}
		if s, err := strconv.Unquote(lit.Value); err == nil && sqlStatement.MatchString(s) {
			line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
			at(lit.Pos(), line)
		}
		return true
	})
	return hits, nil
}

// moduleRoot is the directory of the module's go.mod, above this package.
func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		} else if !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = up
	}
}

func TestSQLStatementPattern(t *testing.T) {
	for s, want := range map[string]bool{
		"SELECT id FROM users WHERE username=$1":          true,
		"select count(*) from members":                    true,
		"SELECT EXISTS (SELECT 1 FROM pg_database)":       true,
		"SELECT $1::text":                                 true,
		"\n\t\tINSERT INTO friends (user_id) VALUES ($1)": true,
		"update members SET joined_seq=$3":                true,
		"DELETE FROM revoked_sessions":                    true,
		"WITH moved AS (UPDATE heads SET last_seq=1)":     true,
		"with recursive t(n) as (select 1)":               true,
		"(SELECT seq FROM events)":                        true,
		"CREATE TABLE x (id text)":                        true,
		"DELETE /v1/friends/{user}":                       false,
		"with a body":                                     false,
		"Select a conversation":                           false,
		"update the read pointer":                         false,
		"m.pending_op IS DISTINCT FROM 'leave'":           false,
		"insert the event":                                false,
	} {
		if got := sqlStatement.MatchString(s); got != want {
			t.Errorf("%q: matched %v, want %v", s, got, want)
		}
	}
}
