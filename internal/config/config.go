// Package config holds the settings every role reads: one struct, filled from
// flags and CHAT_* environment variables (a flag wins over the environment),
// with defaults that work on one machine.
package config

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Config is the whole configuration of a process.
type Config struct {
	HTTPAddr     string
	PprofAddr    string
	PostgresURL  string
	RedisURL     string
	RedisPrefix  string
	NATSURL      string
	DataDir      string
	TokenSecret  string
	TokenTTL     time.Duration
	RecallWindow time.Duration
	RateLimits   bool
	InstanceID   string

	// LogLevel is the least severe level logged (CHAT_LOG_LEVEL).
	LogLevel slog.Level
	// AccessLog logs one line per REST request (method, route, status,
	// duration, bytes; never a header or a token).
	AccessLog bool

	// Partitions is how many sequencer partitions conversations are spread
	// over; every process of a deployment must agree on it.
	Partitions     int
	StreamReplicas int
	StreamStorage  string
	// StreamSync is how the embedded JetStream server syncs file storage
	// to disk: "always" (fsync before every ack) or a Go duration (its
	// sync interval). An external NATS cluster sets this itself
	// (jetstream { sync_interval } in nats-server.conf). StreamSyncMode
	// reads it.
	StreamSync      string
	TimelineMaxAge  time.Duration
	DuplicateWindow time.Duration
	DedupeTTL       time.Duration
	LeaseTTL        time.Duration
	PasswordCost    int
	ShutdownTimeout time.Duration
	CommandTimeout  time.Duration
	// CommandsInFlight bounds the commands one api/edge process has taken
	// in and not yet answered; over it a command waits up to AdmissionWait
	// for a slot, then gets unavailable (timeline/admit.go). 0: no bound.
	CommandsInFlight int
	AdmissionWait    time.Duration
	SequencerBatch   int
	ProjectorBatch   int
	ProjectorLinger  time.Duration
	CommandRate      float64
	CommandBurst     int
	MaxGroupMembers  int
	EdgeOutboundSize int
	// EdgeFirstSyncWait is how long a new connection's live events wait
	// for its first sync (docs/protocol.md: 10 s); tests shorten it.
	EdgeFirstSyncWait time.Duration

	// Transport.
	AllowedOrigins   string // comma-separated WebSocket origins; empty: same origin only; "*": any
	TLSCert, TLSKey  string
	HTTPReadTimeout  time.Duration // a REST request's body must arrive within it
	HTTPWriteTimeout time.Duration // a REST answer must be written within it
	ClientIPHeader   string        // header a trusted proxy puts the client address in; empty: the peer

	// PresenceHeartbeat is how often an edge refreshes its connections'
	// presence; a dead edge's users are offline within two of them.
	PresenceHeartbeat time.Duration

	// Abuse limits (lifted by RateLimits=false).
	LoginFailuresPerUser int
	LoginFailuresPerAddr int
	LoginFailureWindow   time.Duration
	SignupsPerAddr       int
	SignupWindow         time.Duration
	UserCommands         int // commands per user across connections per UserCommandWindow
	UserCommandWindow    time.Duration

	// The app's own backend (the /v1/server/ calls, webhooks, offline push).
	ServerKeys    string // comma-separated keys of /v1/server/; empty: those calls are off
	ServerRate    int    // /v1/server/ calls per second per key (lifted by RateLimits=false)
	WebhookURLs   string // comma-separated URLs every TIMELINE event is POSTed to
	WebhookSecret string // HMAC-SHA256 key of the webhook and push bodies
	PushURL       string // where offline members' notifications are POSTed
}

// List splits a comma-separated setting, dropping empty entries.
func List(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// Default returns the configuration with every default applied: the one
// home of the defaults. The flags are defined with these values, and a role
// that falls back on a default for a zero option reads it here.
func Default() Config {
	return Config{
		HTTPAddr:             "127.0.0.1:8080",
		PostgresURL:          "postgres://postgres@127.0.0.1:5432/chat?sslmode=disable",
		RedisURL:             "redis://127.0.0.1:6379/0",
		DataDir:              "./data",
		TokenTTL:             30 * 24 * time.Hour,
		RecallWindow:         2 * time.Minute,
		RateLimits:           true,
		LogLevel:             slog.LevelInfo,
		AccessLog:            false,
		Partitions:           8,
		StreamReplicas:       1,
		StreamStorage:        "file",
		StreamSync:           DefaultStreamSync,
		TimelineMaxAge:       0,
		DuplicateWindow:      2 * time.Minute,
		DedupeTTL:            25 * time.Hour,
		LeaseTTL:             6 * time.Second,
		PasswordCost:         10,
		ShutdownTimeout:      10 * time.Second,
		CommandTimeout:       10 * time.Second,
		CommandsInFlight:     4000,
		AdmissionWait:        time.Second,
		SequencerBatch:       500,
		ProjectorBatch:       500,
		ProjectorLinger:      20 * time.Millisecond,
		CommandRate:          50,
		CommandBurst:         100,
		MaxGroupMembers:      10000,
		EdgeOutboundSize:     1024,
		EdgeFirstSyncWait:    10 * time.Second,
		HTTPReadTimeout:      30 * time.Second,
		HTTPWriteTimeout:     60 * time.Second,
		PresenceHeartbeat:    10 * time.Second,
		LoginFailuresPerUser: 10,
		LoginFailuresPerAddr: 100,
		LoginFailureWindow:   15 * time.Minute,
		SignupsPerAddr:       20,
		SignupWindow:         time.Hour,
		UserCommands:         1000,
		UserCommandWindow:    10 * time.Second,
		ServerRate:           1000,
	}
}

// onOffText is a switch's default as its flag spells it.
func onOffText(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// Load parses args (without the program name) over the environment given by
// getenv (os.Getenv in production).
func Load(args []string, getenv func(string) string) (Config, error) {
	return load(args, getenv, nil)
}

// load is Load; defined, when not nil, sees the flag set once every
// setting is defined on it (Settings lists them from there).
func load(args []string, getenv func(string) string, defined func(*flag.FlagSet)) (Config, error) {
	var c Config
	d := Default()
	// Named after the binary, so that -h says "Usage of chatd" (or api, edge…).
	fs := flag.NewFlagSet(filepath.Base(os.Args[0]), flag.ContinueOnError)
	str := func(p *string, name, env, def, help string) {
		if v := getenv(env); v != "" {
			def = v
		}
		fs.StringVar(p, name, def, help+" ($"+env+")")
	}
	dur := func(p *time.Duration, name, env string, def time.Duration, help string) error {
		if v := getenv(env); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%s: %w", env, err)
			}
			def = d
		}
		fs.DurationVar(p, name, def, help+" ($"+env+")")
		return nil
	}
	num := func(p *int, name, env string, def int, help string) error {
		if v := getenv(env); v != "" {
			if _, err := fmt.Sscan(v, &def); err != nil {
				return fmt.Errorf("%s: %w", env, err)
			}
		}
		fs.IntVar(p, name, def, help+" ($"+env+")")
		return nil
	}
	var rateLimits, logLevel, accessLog string
	str(&c.HTTPAddr, "http-addr", "CHAT_HTTP_ADDR", d.HTTPAddr, "address of REST, /v1/ws and the health and metrics endpoints")
	str(&c.PprofAddr, "pprof-addr", "CHAT_PPROF_ADDR", d.PprofAddr, "address of a separate net/http/pprof listener; empty: none")
	str(&c.PostgresURL, "postgres-url", "CHAT_POSTGRES_URL", d.PostgresURL, "PostgreSQL URL; the database is created if missing")
	str(&c.RedisURL, "redis-url", "CHAT_REDIS_URL", d.RedisURL, "Redis URL")
	str(&c.RedisPrefix, "redis-prefix", "CHAT_REDIS_PREFIX", d.RedisPrefix, "prefix of every Redis key (to share one Redis)")
	str(&c.NATSURL, "nats-url", "CHAT_NATS_URL", d.NATSURL, "NATS URLs, comma separated; empty starts an embedded JetStream server")
	str(&c.DataDir, "data-dir", "CHAT_DATA_DIR", d.DataDir, "the embedded JetStream's storage directory; one process at a time holds it")
	str(&c.TokenSecret, "token-secret", "CHAT_TOKEN_SECRET", d.TokenSecret, "key that signs tokens; empty in one-process mode: generated once and kept in the data dir")
	str(&rateLimits, "rate-limits", "CHAT_RATE_LIMITS", onOffText(d.RateLimits), "on, or off to lift every rate limit")
	str(&logLevel, "log-level", "CHAT_LOG_LEVEL", strings.ToLower(d.LogLevel.String()), "least severe level logged: debug, info, warn or error")
	str(&accessLog, "access-log", "CHAT_ACCESS_LOG", onOffText(d.AccessLog), "on: one info line per REST request (method, route, status, duration, bytes)")
	str(&c.InstanceID, "instance-id", "CHAT_INSTANCE_ID", d.InstanceID, "this process's id (edge id, lease owner); empty: generated")
	str(&c.StreamSync, "stream-sync", "CHAT_STREAM_SYNC", d.StreamSync, "how the embedded JetStream syncs to disk: always (fsync before each ack) or a Go duration (its sync interval); an external NATS sets jetstream.sync_interval itself")
	str(&c.StreamStorage, "stream-storage", "CHAT_STREAM_STORAGE", d.StreamStorage, "JetStream storage of the streams: file or memory")
	str(&c.AllowedOrigins, "allowed-origins", "CHAT_ALLOWED_ORIGINS", d.AllowedOrigins, "origins a browser may open /v1/ws from, comma separated; empty: the same origin as the Host; * any")
	str(&c.TLSCert, "tls-cert", "CHAT_TLS_CERT", d.TLSCert, "PEM certificate file; with CHAT_TLS_KEY the HTTP listener serves TLS")
	str(&c.TLSKey, "tls-key", "CHAT_TLS_KEY", d.TLSKey, "PEM private key file of CHAT_TLS_CERT")
	str(&c.ClientIPHeader, "client-ip-header", "CHAT_CLIENT_IP_HEADER", d.ClientIPHeader, "header a trusted proxy sets to the client address (its last entry counts), e.g. X-Forwarded-For; empty: the peer address")
	str(&c.ServerKeys, "server-keys", "CHAT_SERVER_KEYS", d.ServerKeys, "comma-separated keys for the /v1/server/ calls; empty: those calls are off")
	str(&c.WebhookURLs, "webhook-urls", "CHAT_WEBHOOK_URLS", d.WebhookURLs, "comma-separated URLs every TIMELINE event is POSTed to")
	str(&c.WebhookSecret, "webhook-secret", "CHAT_WEBHOOK_SECRET", d.WebhookSecret, "HMAC-SHA256 key that signs webhook and push bodies (Chat-Signature)")
	str(&c.PushURL, "push-url", "CHAT_PUSH_URL", d.PushURL, "where offline members' notifications are POSTed; empty: none")
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(dur(&c.TokenTTL, "token-ttl", "CHAT_TOKEN_TTL", d.TokenTTL, "how long a token is valid"))
	add(dur(&c.RecallWindow, "recall-window", "CHAT_RECALL_WINDOW", d.RecallWindow, "how long a sender may recall"))
	add(dur(&c.TimelineMaxAge, "timeline-max-age", "CHAT_TIMELINE_MAX_AGE", d.TimelineMaxAge, "how long TIMELINE keeps events; 0 keeps them forever"))
	add(dur(&c.DuplicateWindow, "duplicate-window", "CHAT_DUPLICATE_WINDOW", d.DuplicateWindow, "JetStream's in-memory duplicate window on CMDS and TIMELINE"))
	add(dur(&c.DedupeTTL, "dedupe-ttl", "CHAT_DEDUPE_TTL", d.DedupeTTL, "how long a command id is remembered"))
	add(dur(&c.LeaseTTL, "lease-ttl", "CHAT_LEASE_TTL", d.LeaseTTL, "how long a dead sequencer holds its partitions"))
	add(dur(&c.ShutdownTimeout, "shutdown-timeout", "CHAT_SHUTDOWN_TIMEOUT", d.ShutdownTimeout, "how long SIGTERM waits for in-flight work"))
	add(dur(&c.CommandTimeout, "command-timeout", "CHAT_COMMAND_TIMEOUT", d.CommandTimeout, "how long a REST send waits for its seq"))
	add(num(&c.CommandsInFlight, "commands-in-flight", "CHAT_COMMANDS_IN_FLIGHT", d.CommandsInFlight, "commands a process has in flight (taken in, not answered) before more wait for room; 0: no bound"))
	add(dur(&c.AdmissionWait, "admission-wait", "CHAT_ADMISSION_WAIT", d.AdmissionWait, "how long a command over the in-flight limit waits for room before it is refused with unavailable; 0: refused at once"))
	add(dur(&c.HTTPReadTimeout, "http-read-timeout", "CHAT_HTTP_READ_TIMEOUT", d.HTTPReadTimeout, "how long a REST request's body may take to arrive"))
	add(dur(&c.HTTPWriteTimeout, "http-write-timeout", "CHAT_HTTP_WRITE_TIMEOUT", d.HTTPWriteTimeout, "how long a REST answer may take to write (WebSockets are exempt)"))
	add(dur(&c.EdgeFirstSyncWait, "edge-first-sync-wait", "CHAT_EDGE_FIRST_SYNC_WAIT", d.EdgeFirstSyncWait, "how long a new connection's live events wait for its first sync before they are delivered without one"))
	add(dur(&c.PresenceHeartbeat, "presence-heartbeat", "CHAT_PRESENCE_HEARTBEAT", d.PresenceHeartbeat, "how often an edge refreshes presence; a dead edge's users go offline within two"))
	add(num(&c.LoginFailuresPerUser, "login-failures-per-user", "CHAT_LOGIN_FAILURES_PER_USER", d.LoginFailuresPerUser, "failed logins per username per window"))
	add(num(&c.LoginFailuresPerAddr, "login-failures-per-addr", "CHAT_LOGIN_FAILURES_PER_ADDR", d.LoginFailuresPerAddr, "failed logins per client address per window"))
	add(dur(&c.LoginFailureWindow, "login-failure-window", "CHAT_LOGIN_FAILURE_WINDOW", d.LoginFailureWindow, "window of the failed-login limits"))
	add(num(&c.SignupsPerAddr, "signups-per-addr", "CHAT_SIGNUPS_PER_ADDR", d.SignupsPerAddr, "accounts created per client address per window"))
	add(dur(&c.SignupWindow, "signup-window", "CHAT_SIGNUP_WINDOW", d.SignupWindow, "window of the sign-up limit"))
	add(num(&c.UserCommands, "user-commands", "CHAT_USER_COMMANDS", d.UserCommands, "commands per user across all connections per window"))
	add(dur(&c.UserCommandWindow, "user-command-window", "CHAT_USER_COMMAND_WINDOW", d.UserCommandWindow, "window of the per-user command limit"))
	add(num(&c.ServerRate, "server-rate", "CHAT_SERVER_RATE", d.ServerRate, "/v1/server/ calls per second per server key"))
	add(num(&c.Partitions, "partitions", "CHAT_PARTITIONS", d.Partitions, "sequencer partitions; the same in every process"))
	add(num(&c.StreamReplicas, "stream-replicas", "CHAT_STREAM_REPLICAS", d.StreamReplicas, "replicas of the JetStream streams (3 on a cluster)"))
	add(num(&c.PasswordCost, "password-cost", "CHAT_PASSWORD_COST", d.PasswordCost, "bcrypt cost"))
	add(num(&c.SequencerBatch, "sequencer-batch", "CHAT_SEQUENCER_BATCH", d.SequencerBatch, "commands a sequencer takes from CMDS and appends at once"))
	add(num(&c.ProjectorBatch, "projector-batch", "CHAT_PROJECTOR_BATCH", d.ProjectorBatch, "events a projector writes at once"))
	add(dur(&c.ProjectorLinger, "projector-linger", "CHAT_PROJECTOR_LINGER", d.ProjectorLinger, "how long the history and unread projectors wait for a batch to fill (0: not at all)"))
	add(num(&c.CommandBurst, "command-burst", "CHAT_COMMAND_BURST", d.CommandBurst, "commands a connection may send in a burst"))
	add(num(&c.MaxGroupMembers, "max-group-members", "CHAT_MAX_GROUP_MEMBERS", d.MaxGroupMembers, "largest group"))
	add(num(&c.EdgeOutboundSize, "edge-outbound", "CHAT_EDGE_OUTBOUND", d.EdgeOutboundSize, "frames queued per connection before it is dropped as too slow"))
	rate := d.CommandRate
	if v := getenv("CHAT_COMMAND_RATE"); v != "" {
		if _, err := fmt.Sscan(v, &rate); err != nil {
			add(fmt.Errorf("CHAT_COMMAND_RATE: %w", err))
		}
	}
	fs.Float64Var(&c.CommandRate, "command-rate", rate, "commands per second per connection ($CHAT_COMMAND_RATE)")
	if defined != nil {
		defined(fs)
	}
	if len(errs) > 0 {
		return c, errs[0]
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var err error
	if c.RateLimits, err = onOff("CHAT_RATE_LIMITS", rateLimits); err != nil {
		return c, err
	}
	if c.AccessLog, err = onOff("CHAT_ACCESS_LOG", accessLog); err != nil {
		return c, err
	}
	if c.LogLevel, err = level(logLevel); err != nil {
		return c, err
	}
	if c.Partitions < 1 || c.Partitions > 1024 {
		return c, fmt.Errorf("partitions: want 1..1024, got %d", c.Partitions)
	}
	if c.SequencerBatch < 1 || c.SequencerBatch > 1000 {
		return c, fmt.Errorf("sequencer batch: want 1..1000 (JetStream's atomic batch limit), got %d", c.SequencerBatch)
	}
	if c.ProjectorLinger < 0 || c.ProjectorLinger > time.Second {
		return c, fmt.Errorf("projector linger: want 0..1s, got %v", c.ProjectorLinger)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return c, fmt.Errorf("CHAT_TLS_CERT and CHAT_TLS_KEY go together")
	}
	if c.PresenceHeartbeat < 10*time.Millisecond {
		return c, fmt.Errorf("presence heartbeat: want at least 10ms, got %v", c.PresenceHeartbeat)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"login failure window", c.LoginFailureWindow}, {"signup window", c.SignupWindow}, {"user command window", c.UserCommandWindow}} {
		if d.v <= 0 {
			return c, fmt.Errorf("%s: want a positive duration, got %v", d.name, d.v)
		}
	}
	if (len(List(c.WebhookURLs)) > 0 || c.PushURL != "") && c.WebhookSecret == "" {
		return c, fmt.Errorf("CHAT_WEBHOOK_SECRET is required with CHAT_WEBHOOK_URLS or CHAT_PUSH_URL")
	}
	if c.ServerRate < 1 {
		return c, fmt.Errorf("server rate: want at least 1, got %d", c.ServerRate)
	}
	if _, _, err := c.StreamSyncMode(); err != nil {
		return c, err
	}
	if c.StreamStorage != "file" && c.StreamStorage != "memory" {
		return c, fmt.Errorf("stream storage: want file or memory, got %q", c.StreamStorage)
	}
	return c, nil
}

// DefaultStreamSync is CHAT_STREAM_SYNC's default, the one-process mode's:
// fsync every second. Measured, it costs nothing visible next to
// nats-server's own 2-minute default, and a power loss loses at most about
// the last second of acked events instead of two minutes; "always" costs
// too much there (fsync per append on one disk). A cluster sets
// sync_interval: always on its NATS servers instead. docs/operations.md,
// "Durability", has the figures and what survives what.
const DefaultStreamSync = "1s"

// StreamSyncMode reads StreamSync: always, or the sync interval.
func (c Config) StreamSyncMode() (always bool, interval time.Duration, err error) {
	if strings.EqualFold(strings.TrimSpace(c.StreamSync), "always") {
		return true, 0, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(c.StreamSync))
	if err != nil || d <= 0 {
		return false, 0, fmt.Errorf("CHAT_STREAM_SYNC: want always or a positive Go duration (JetStream's sync interval, e.g. 2m), got %q", c.StreamSync)
	}
	return false, d, nil
}

// AtomicBatches reports whether the sequencer appends every batch as one
// JetStream atomic batch (sequencer.Options.AtomicBatches): where
// JetStream stages batches cheaply, on replicated or memory streams. A
// single file-backed replica stages them in synced files.
func (c Config) AtomicBatches() bool { return c.StreamReplicas > 1 || c.StreamStorage == "memory" }

// Pipelined reports whether the sequencer pipelines its appends
// (sequencer.Options.Pipelined): with the embedded JetStream on one file
// replica, where this process is the only writer of TIMELINE and an atomic
// batch would be staged in a synced file.
func (c Config) Pipelined() bool { return c.NATSURL == "" && !c.AtomicBatches() }

// onOff parses a switch; empty is not possible (every switch has a default).
func onOff(env, v string) (bool, error) {
	switch strings.ToLower(v) {
	case "on", "true", "1":
		return true, nil
	case "off", "false", "0":
		return false, nil
	}
	return false, fmt.Errorf("%s: want on or off, got %q", env, v)
}

// level parses CHAT_LOG_LEVEL: one of slog's four names, nothing else
// (slog would also take "info+2", which nobody means).
func level(v string) (slog.Level, error) {
	switch strings.ToLower(v) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("CHAT_LOG_LEVEL: want debug, info, warn or error, got %q", v)
}

// Setting is one setting as -h shows it.
type Setting struct {
	Env     string // its CHAT_* variable
	Flag    string // its flag, without the dash
	Default string // the flag's default, as flag prints it ("2m0s", "")
	// Value is the default as a value (a time.Duration, an int, a string…).
	Value any
}

// usageEnv is the "($CHAT_X)" every flag's usage ends with.
var usageEnv = regexp.MustCompile(`\(\$(CHAT_[A-Z0-9_]+)\)$`)

// Settings lists every setting with its default, as the flags define them,
// sorted by variable; README.md's configuration table is checked against it.
func Settings() []Setting {
	var out []Setting
	_, _ = load(nil, func(string) string { return "" }, func(fs *flag.FlagSet) {
		fs.VisitAll(func(f *flag.Flag) {
			s := Setting{Flag: f.Name, Default: f.DefValue}
			if m := usageEnv.FindStringSubmatch(f.Usage); m != nil {
				s.Env = m[1]
			}
			if g, ok := f.Value.(flag.Getter); ok {
				s.Value = g.Get()
			}
			out = append(out, s)
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Env < out[j].Env })
	return out
}

// EnvNames lists every CHAT_* variable a process reads; deployment files are
// checked against it.
func EnvNames() []string {
	var names []string
	seen := map[string]bool{}
	_, _ = Load(nil, func(k string) string {
		if !seen[k] {
			seen[k] = true
			names = append(names, k)
		}
		return ""
	})
	return names
}
