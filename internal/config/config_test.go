package config

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
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

// CHAT_STREAM_SYNC is always or a positive duration; anything else is
// refused at start rather than silently meaning JetStream's default.
func TestStreamSync(t *testing.T) {
	for _, tc := range []struct {
		env      string
		always   bool
		interval time.Duration
		bad      bool
	}{
		{"", false, time.Second, false}, // the one-process default
		{"always", true, 0, false},
		{"ALWAYS", true, 0, false},
		{"250ms", false, 250 * time.Millisecond, false},
		{"2m", false, 2 * time.Minute, false},
		{"0s", false, 0, true},
		{"-1s", false, 0, true},
		{"sometimes", false, 0, true},
	} {
		c, err := Load(nil, func(k string) string {
			if k == "CHAT_STREAM_SYNC" {
				return tc.env
			}
			return ""
		})
		if tc.bad {
			if err == nil || !strings.Contains(err.Error(), "CHAT_STREAM_SYNC") {
				t.Errorf("CHAT_STREAM_SYNC=%q: err = %v, want a CHAT_STREAM_SYNC error", tc.env, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("CHAT_STREAM_SYNC=%q: %v", tc.env, err)
			continue
		}
		always, interval, err := c.StreamSyncMode()
		if err != nil || always != tc.always || interval != tc.interval {
			t.Errorf("CHAT_STREAM_SYNC=%q: always=%v interval=%v err=%v; want %v %v", tc.env, always, interval, err, tc.always, tc.interval)
		}
	}
	// The flag wins over the environment.
	c, err := Load([]string{"-stream-sync", "always"}, func(k string) string {
		if k == "CHAT_STREAM_SYNC" {
			return "5s"
		}
		return ""
	})
	if always, _, _ := c.StreamSyncMode(); err != nil || !always {
		t.Errorf("-stream-sync always over CHAT_STREAM_SYNC=5s: always=%v, %v", always, err)
	}
}

// CHAT_LOG_LEVEL takes slog's four level names (a flag wins) and refuses
// anything else; CHAT_ACCESS_LOG is a switch that defaults to off.
func TestLogSettings(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	c, err := Load(nil, env(nil))
	if err != nil || c.LogLevel != slog.LevelInfo || c.AccessLog {
		t.Fatalf("defaults: level %v access log %v (%v)", c.LogLevel, c.AccessLog, err)
	}
	for v, want := range map[string]slog.Level{"debug": slog.LevelDebug, "INFO": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError} {
		if c, err := Load(nil, env(map[string]string{"CHAT_LOG_LEVEL": v})); err != nil || c.LogLevel != want {
			t.Errorf("CHAT_LOG_LEVEL=%s: %v (%v), want %v", v, c.LogLevel, err, want)
		}
	}
	if c, err := Load([]string{"-log-level", "error", "-access-log", "on"}, env(map[string]string{"CHAT_LOG_LEVEL": "debug"})); err != nil || c.LogLevel != slog.LevelError || !c.AccessLog {
		t.Errorf("flags: level %v access log %v (%v)", c.LogLevel, c.AccessLog, err)
	}
	for _, bad := range []map[string]string{{"CHAT_LOG_LEVEL": "verbose"}, {"CHAT_LOG_LEVEL": "info+2"}, {"CHAT_ACCESS_LOG": "yes please"}} {
		if _, err := Load(nil, env(bad)); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestDefaultIsWhatLoadGives: Default is the flags' defaults, so a role
// falling back on config.Default() behaves as a process started with no
// settings.
func TestDefaultIsWhatLoadGives(t *testing.T) {
	loaded, err := Load(nil, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if d := Default(); d != loaded {
		t.Errorf("Default() = %+v\nLoad with no settings = %+v", d, loaded)
	}
}
