package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"strings"
	"testing"
)

// TestUsageNamesTheBinary: `chatd -h` says "Usage of chatd", not a name
// the user never typed.
func TestUsageNamesTheBinary(t *testing.T) {
	args0, stderr := os.Args[0], os.Stderr
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	os.Args[0], os.Stderr = "/usr/local/bin/chatd", w
	_, err = Load([]string{"-h"}, func(string) string { return "" })
	os.Args[0], os.Stderr = args0, stderr
	w.Close()
	out, _ := io.ReadAll(r)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	if first, _, _ := strings.Cut(string(out), "\n"); first != "Usage of chatd:" {
		t.Errorf("usage starts %q", first)
	}
}
