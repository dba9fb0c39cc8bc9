package sequencer_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seqchat/seqchat/internal/config"
)

// lockedBuffer collects log lines from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines(t *testing.T) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// A start takes every partition at once and says so in one line at info;
// the line per partition is for debugging only.
func TestStartLogsOneSummaryLine(t *testing.T) {
	r := newRig(t, func(c *config.Config) { c.Partitions = 8 })
	var buf lockedBuffer
	r.startLog(t, "s1", slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	deadline := time.Now().Add(30 * time.Second)
	for {
		var summaries []map[string]any
		for _, l := range buf.lines(t) {
			switch l["msg"] {
			case "sequencing partition":
				t.Fatalf("a line per partition at %v: %v", l["level"], l)
			case "sequencing partitions":
				summaries = append(summaries, l)
			}
		}
		if n := len(summaries); n > 0 && summaries[n-1]["owned"] == float64(8) {
			// Leases taken within one quiet period make one line; a slow
			// machine may split them, never into one line each.
			if n > 2 {
				t.Fatalf("%d summary lines: %v", n, summaries)
			}
			if summaries[n-1]["of"] != float64(8) {
				t.Fatalf("summary %v", summaries[n-1])
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no summary of 8 partitions in 30s: %v", summaries)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
