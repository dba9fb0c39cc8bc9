// Package api serves the REST half of docs/protocol.md: accounts and sessions,
// friends, conversations and membership, history paging and sending.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seqchat/seqchat/docs"
	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/activity"
	"github.com/seqchat/seqchat/internal/auth"
	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/internal/receipts"
	"github.com/seqchat/seqchat/internal/serve"
)

// Submitter sequences commands.
type Submitter interface {
	Submit(ctx context.Context, cmd events.Command, origin string) (events.Result, error)
}

// Options configure the api.
type Options struct {
	PasswordCost    int
	CommandTimeout  time.Duration
	MaxGroupMembers int
	Log             *slog.Logger
	// Online reports which of users have a live connection; nil: nobody.
	Online func(ctx context.Context, users []string) (map[string]bool, error)
	// Reads moves read pointers.
	Reads *receipts.Service
	// Unread counts what each user has not read.
	Unread interface {
		Counts(ctx context.Context, user string) (map[string]int64, error)
		MentionCounts(ctx context.Context, user string) (map[string]int64, error)
	}
	// Revocations holds the logged-out sessions in memory; nil: each
	// request asks Stores.Sessions.
	Revocations *auth.Revocations
	// Limits counts failed logins and sign-ups; nil: no such limits.
	Limits                                     *activity.Windows
	LoginFailuresPerUser, LoginFailuresPerAddr activity.Limit
	SignupsPerAddr                             activity.Limit
	// UserLimit limits commands (sends, recalls) per user, shared with
	// the edges; nil: none.
	UserLimit interface {
		Allow(user string) (bool, time.Duration)
	}
	// ClientIPHeader names the header a trusted proxy puts the client's
	// address in (its last entry counts); empty: the peer address.
	ClientIPHeader string
	// Server configures the calls of the app's own backend (server.go).
	Server ServerOptions
	// Metrics is the registry request and rate-limit metrics go to; nil:
	// a private one.
	Metrics prometheus.Registerer
	// AccessLog logs one line per request (observe.go).
	AccessLog bool
}

// API is the REST api.
type API struct {
	stores  Stores
	tokens  *auth.Tokens
	submit  Submitter
	history History
	opt     Options
	server  *serverKeys
	obs     *observer
}

// New returns the api.
func New(stores Stores, tokens *auth.Tokens, submit Submitter, history History, opt Options) *API {
	d := config.Default()
	if opt.CommandTimeout <= 0 {
		opt.CommandTimeout = d.CommandTimeout
	}
	if opt.MaxGroupMembers <= 0 {
		opt.MaxGroupMembers = d.MaxGroupMembers
	}
	return &API{stores: stores, tokens: tokens, submit: submit, history: history, opt: opt, server: newServerKeys(opt.Server), obs: newObserver(opt)}
}

// maxBody bounds every request body: a 16 KiB message body plus its frame.
const maxBody = 64 << 10

// Router is what the api mounts its routes on: an *http.ServeMux, or a
// test that lists the routes (docs/openapi.yaml must describe them all).
type Router interface {
	HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request))
}

// Mount adds the api's routes to mux.
func (a *API) Mount(mux Router) {
	mux.HandleFunc("GET /v1/openapi.yaml", a.observe(serveOpenAPI))
	mux.HandleFunc("POST /v1/users", a.handle(a.register))
	mux.HandleFunc("POST /v1/sessions", a.handle(a.login))
	mux.HandleFunc("DELETE /v1/sessions/current", a.authed(a.logout))
	mux.HandleFunc("GET /v1/me", a.authed(a.me))
	mux.HandleFunc("PUT /v1/friends/{user}", a.authed(a.addFriend))
	mux.HandleFunc("DELETE /v1/friends/{user}", a.authed(a.removeFriend))
	mux.HandleFunc("GET /v1/friends", a.authed(a.friends))
	mux.HandleFunc("POST /v1/conversations", a.authed(a.createConversation))
	mux.HandleFunc("GET /v1/conversations", a.authed(a.conversations))
	mux.HandleFunc("GET /v1/conversations/{id}", a.authed(a.conversation))
	mux.HandleFunc("POST /v1/conversations/{id}/members", a.authed(a.addMember))
	mux.HandleFunc("DELETE /v1/conversations/{id}/members/{user}", a.authed(a.removeMember))
	mux.HandleFunc("GET /v1/conversations/{id}/messages", a.authed(a.messages))
	mux.HandleFunc("POST /v1/conversations/{id}/messages", a.authed(a.send))
	mux.HandleFunc("POST /v1/conversations/{id}/read", a.authed(a.read))
	mux.HandleFunc("GET /v1/conversations/{id}/receipts", a.authed(a.receipts))
	mux.HandleFunc("POST /v1/conversations/{id}/recall", a.authed(a.recall))
	mux.HandleFunc("GET /v1/unread", a.authed(a.unread))
	a.mountServer(mux)
	a.mountRich(mux)
	// Unknown /v1 paths answer in the protocol's error shape.
	mux.HandleFunc("/v1/", a.handle(func(w http.ResponseWriter, r *http.Request) error {
		return events.Errorf(events.CodeNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
	}))
}

// serveOpenAPI answers docs/openapi.yaml; no token needed.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(docs.OpenAPI)
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) error
type authedFunc func(w http.ResponseWriter, r *http.Request, c auth.Claims) error

func (a *API) handle(h handlerFunc) http.HandlerFunc { return a.handleLimit(maxBody, h) }

// handleLimit is handle with a body limit of its own.
func (a *API) handleLimit(limit int64, h handlerFunc) http.HandlerFunc {
	return a.observe(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		if err := h(w, r); err != nil {
			a.fail(w, r, err)
		}
	})
}

func (a *API) authed(h authedFunc) http.HandlerFunc {
	return a.handle(func(w http.ResponseWriter, r *http.Request) error {
		if a.isServerKey(r) {
			return events.Errorf(events.CodeUnauthorized, "a server key is not a user token: use the /v1/server/ calls")
		}
		c, err := a.tokens.FromRequest(r, false)
		if err != nil {
			return err
		}
		if err := a.checkRevoked(r.Context(), c); err != nil {
			return err
		}
		return h(w, r, c)
	})
}

// refused counts a refusal by the rate limit named limit (activity's limit
// names, the label of chat_rate_limited_total) and returns err, the
// rate_limited error that says when to come back (events.RateLimited).
// The edge counts its refusals the same way, where they happen.
func (a *API) refused(limit string, err error) error {
	a.obs.rejected.WithLabelValues(limit).Inc()
	return err
}

// fail writes err in the protocol's error shape.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := events.CodeOf(err)
	// A refusal that says when to come back (rate limits, a busy
	// process's admission control) says it in Retry-After.
	if after := events.RetryAfterOf(err); after > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(events.RetrySeconds(after)))
	}
	switch code {
	case events.CodeInternal:
		a.opt.Log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	case events.CodeUnavailable:
		a.opt.Log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, serve.HTTPStatus(code), map[string]any{
		"error": map[string]string{"code": string(code), "message": events.MessageOf(err)},
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads a JSON object body into v.
func decode(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return events.Errorf(events.CodeTooLarge, "request body is over %d bytes", tooBig.Limit)
		}
		return events.WrapError(events.CodeBadRequest, err, "request body could not be read")
	}
	return decodeBytes(b, v)
}

// decodeBytes parses a request body: one JSON object, in UTF-8, refused
// in the client's words (events.DecodeObject), never encoding/json's.
func decodeBytes(b []byte, v any) error {
	return events.DecodeObject("body", b, v)
}

// clientAddr is the address limits per client count against.
func (a *API) clientAddr(r *http.Request) string {
	if h := a.opt.ClientIPHeader; h != "" {
		if v := r.Header.Get(h); v != "" {
			parts := strings.Split(v, ",")
			if ip := strings.TrimSpace(parts[len(parts)-1]); ip != "" {
				return ip
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// queryInt parses a non-negative integer query parameter; ok is false when absent.
func queryInt(r *http.Request, name string) (n int64, ok bool, err error) {
	s := r.URL.Query().Get(name)
	if !r.URL.Query().Has(name) {
		return 0, false, nil
	}
	n, perr := strconv.ParseInt(s, 10, 64)
	if perr != nil || n < 0 {
		return 0, false, events.NotNonNegative(name)
	}
	return n, true, nil
}
