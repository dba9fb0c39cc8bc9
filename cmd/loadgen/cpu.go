package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of utime and stime in /proc/<pid>/stat;
// it is 100 on every Linux that Go supports.
const clockTick = 100

// cpuSample is the CPU time each watched process had used at one moment.
type cpuSample struct {
	at    time.Time
	procs map[int]proc
}

type proc struct {
	name  string
	ticks int64 // utime + stime
}

// procStat reads utime+stime of a process, and its name.
func procStat(pid int) (proc, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return proc{}, false
	}
	// The name is in parentheses and may contain spaces: the fields that
	// follow start after the last ')'.
	open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || close < open {
		return proc{}, false
	}
	f := strings.Fields(string(b[close+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return proc{}, false
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return proc{}, false
	}
	return proc{name: string(b[open+1 : close]), ticks: u + s}, true
}

// pgBackends finds the Postgres backends connected to database db: their
// process titles read "postgres: [cluster:] user db addr state".
func pgBackends(db string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !bytes.HasPrefix(b, []byte("postgres: ")) {
			continue
		}
		f := strings.Fields(string(bytes.TrimRight(b, "\x00")))
		for _, w := range f[1:min(len(f), 4)] {
			if w == db {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

func readCPU(o options) *cpuSample {
	if len(o.pids) == 0 && o.pgdb == "" {
		return nil
	}
	s := &cpuSample{at: time.Now(), procs: map[int]proc{}}
	add := func(pid int, label string) {
		if p, ok := procStat(pid); ok {
			if label != "" {
				p.name = label
			}
			s.procs[pid] = p
		}
	}
	for _, pid := range o.pids {
		add(pid, "")
	}
	if o.pgdb != "" {
		for _, pid := range pgBackends(o.pgdb) {
			add(pid, "postgres "+o.pgdb)
		}
	}
	add(os.Getpid(), "loadgen")
	return s
}

// cpuResult is the CPU the watched processes used during a phase.
type cpuResult struct {
	// ServerCores is the CPU of every watched process but loadgen, in
	// cores (CPU seconds per second).
	ServerCores float64 `json:"server_cores"`
	// ServerUSPerAck is that CPU per acked message, in microseconds.
	ServerUSPerAck float64 `json:"server_us_per_ack"`
	LoadgenCores   float64 `json:"loadgen_cores"`
	// ByProcess is each process's cores, by name.
	ByProcess map[string]float64 `json:"by_process"`
}

func cpuDiff(a, b *cpuSample, acked int64) *cpuResult {
	if a == nil || b == nil {
		return nil
	}
	wall := b.at.Sub(a.at).Seconds()
	r := &cpuResult{ByProcess: map[string]float64{}}
	var server int64
	for pid, pb := range b.procs {
		// A backend that appeared during the phase used all its CPU in it.
		d := pb.ticks - a.procs[pid].ticks
		cores := float64(d) / clockTick / wall
		r.ByProcess[pb.name] += cores
		if pid == os.Getpid() {
			r.LoadgenCores = cores
			continue
		}
		server += d
	}
	r.ServerCores = float64(server) / clockTick / wall
	if acked > 0 {
		r.ServerUSPerAck = float64(server) / clockTick / float64(acked) * 1e6
	}
	return r
}

// allocSample is the server's allocation counters from its /metrics (the
// Go collector's), when it exposes them: the process that serves -url.
type allocSample struct{ mallocs, bytes, gcs, natsIn, natsOut float64 }

func readAllocs(base string) *allocSample {
	m, err1 := metric(base, "go_memstats_mallocs_total")
	b, err2 := metric(base, "go_memstats_alloc_bytes_total")
	g, err3 := metric(base, "go_gc_duration_seconds_count")
	if err1 != nil || err2 != nil || err3 != nil {
		return nil
	}
	// NATS traffic, from servers that count it (older ones leave it zero).
	in, _ := metric(base, "chat_nats_in_messages_total")
	out, _ := metric(base, "chat_nats_out_messages_total")
	return &allocSample{m, b, g, in, out}
}

// allocResult is what the server that serves -url allocated per acked
// message during a phase.
type allocResult struct {
	PerAck      float64 `json:"allocs_per_ack"`
	BytesPerAck float64 `json:"bytes_per_ack"`
	GCs         float64 `json:"gcs"`
	// NATS messages the server received and published per acked message.
	NATSInPerAck  float64 `json:"nats_in_per_ack"`
	NATSOutPerAck float64 `json:"nats_out_per_ack"`
}

func allocDiff(a, b *allocSample, acked int64) *allocResult {
	if a == nil || b == nil || acked == 0 {
		return nil
	}
	n := float64(acked)
	return &allocResult{
		PerAck: (b.mallocs - a.mallocs) / n, BytesPerAck: (b.bytes - a.bytes) / n, GCs: b.gcs - a.gcs,
		NATSInPerAck: (b.natsIn - a.natsIn) / n, NATSOutPerAck: (b.natsOut - a.natsOut) / n,
	}
}
