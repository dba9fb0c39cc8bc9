package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"golang.org/x/time/rate"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/activity"
	"github.com/seqchat/seqchat/internal/auth"
	"github.com/seqchat/seqchat/internal/push"
)

// The /v1/server/ calls are for the app's own backend: they carry a server
// key (CHAT_SERVER_KEYS), never a user token, and a server key is accepted
// nowhere else.

// ServerOptions configure the /v1/server/ calls.
type ServerOptions struct {
	// Keys are the accepted server keys; none: the calls are off.
	Keys []string
	// Rate is how many calls per second one key may make (a burst of as
	// many); 0: no limit.
	Rate int
	// Push delivers pushes; nil: POST /v1/server/push is unavailable.
	Push interface {
		Push(ctx context.Context, r push.Request) (bool, error)
	}
}

// Limits of a push.
const (
	maxPushData  = 16 << 10
	maxPushUsers = 10000
	// maxPushBody holds the data and the most users of the longest ids.
	maxPushBody = maxPushData + maxPushUsers*132 + 4096
)

// serverKeys checks server keys in constant time.
type serverKeys struct {
	sums     [][sha256.Size]byte
	rate     int
	mu       sync.Mutex
	limiters map[int]*rate.Limiter
}

func newServerKeys(o ServerOptions) *serverKeys {
	k := &serverKeys{rate: o.Rate, limiters: map[int]*rate.Limiter{}}
	for _, key := range o.Keys {
		k.sums = append(k.sums, sha256.Sum256([]byte(key)))
	}
	return k
}

// match returns the index of the key tok is, or -1. It compares digests
// (of equal length whatever tok is) against every key without stopping at
// the first match: the time taken tells nothing about the keys.
func (k *serverKeys) match(tok string) int {
	sum := sha256.Sum256([]byte(tok))
	found := -1
	for i := range k.sums {
		if subtle.ConstantTimeCompare(sum[:], k.sums[i][:]) == 1 {
			found = i
		}
	}
	return found
}

// allow spends one call of key i's rate.
func (k *serverKeys) allow(i int) (bool, time.Duration) {
	if k.rate <= 0 {
		return true, 0
	}
	k.mu.Lock()
	l := k.limiters[i]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(k.rate), k.rate)
		k.limiters[i] = l
	}
	k.mu.Unlock()
	r := l.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return false, d
	}
	return true, 0
}

// bearer returns the request's bearer credential, "" when it has none.
func bearer(r *http.Request) string {
	scheme, rest, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(rest)
}

// isServerKey reports whether the request carries a server key (which no
// user route accepts).
func (a *API) isServerKey(r *http.Request) bool {
	tok := bearer(r)
	return tok != "" && len(a.server.sums) > 0 && a.server.match(tok) >= 0
}

func (a *API) mountServer(mux Router) {
	mux.HandleFunc("POST /v1/server/sessions", a.serverAuthed(maxBody, a.serverSession))
	mux.HandleFunc("POST /v1/server/conversations/{id}/messages", a.serverAuthed(maxBody, a.serverSend))
	mux.HandleFunc("POST /v1/server/push", a.serverAuthed(maxPushBody, a.serverPush))
	mux.HandleFunc("/v1/server/", a.serverAuthed(maxBody, func(w http.ResponseWriter, r *http.Request) error {
		return events.Errorf(events.CodeNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
	}))
}

// serverAuthed admits a call with a server key, within its key's rate. The
// key itself is never logged or echoed.
func (a *API) serverAuthed(limit int64, h handlerFunc) http.HandlerFunc {
	return a.handleLimit(limit, func(w http.ResponseWriter, r *http.Request) error {
		if len(a.server.sums) == 0 {
			return events.Errorf(events.CodeNotFound, "server calls are off (no server keys are configured)")
		}
		tok := bearer(r)
		if tok == "" {
			return events.Errorf(events.CodeUnauthorized, "missing server key: Authorization: Bearer <key>")
		}
		i := a.server.match(tok)
		if i < 0 {
			return events.Errorf(events.CodeUnauthorized, "not a server key (user tokens are not accepted here)")
		}
		if a.opt.Limits != nil { // nil: CHAT_RATE_LIMITS=off
			if ok, retry := a.server.allow(i); !ok {
				return a.refused(activity.ServerKey, events.RateLimited(retry, "too many server calls with this key; retry in %dms", int(math.Ceil(float64(retry)/float64(time.Millisecond)))))
			}
		}
		return h(w, r)
	})
}

type serverSessionRequest struct {
	Username string `json:"username"`
	Device   string `json:"device"`
}

// serverSession signs in a user the app authenticated itself, creating
// them (without a password) on first use.
func (a *API) serverSession(w http.ResponseWriter, r *http.Request) error {
	var req serverSessionRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if !usernameRE.MatchString(req.Username) {
		return events.Errorf(events.CodeBadRequest, "username must be 3–32 of [a-z0-9_.-]")
	}
	ctx := r.Context()
	id, err := a.stores.Accounts.EnsureUser(ctx, ulid.Make().String(), req.Username)
	if err != nil {
		return err
	}
	return a.issueSession(w, id, req.Device)
}

type serverSendRequest struct {
	sendRequest
	From string `json:"from"`
}

// serverSend sends as a member: the same checks and the same sequencer
// path as that member's own REST send, idempotent by (from, id).
func (a *API) serverSend(w http.ResponseWriter, r *http.Request) error {
	var req serverSendRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.From == "" {
		return events.Errorf(events.CodeBadRequest, "from is required")
	}
	if err := req.validate(); err != nil {
		return err
	}
	from, err := a.resolveUser(r.Context(), req.From)
	if events.IsCode(err, events.CodeNotFound) {
		return events.UserNotMember(req.From, r.PathValue("id"))
	}
	if err != nil {
		return err
	}
	res, err := a.memberCommand(r, auth.Claims{UserID: from}, events.Command{Op: events.OpSend, ID: req.ID, Conv: r.PathValue("id"), From: from, Body: req.Body, ReplyTo: req.ReplyTo, Mentions: req.Mentions})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int64{"seq": res.Seq, "ts": res.TS})
	return nil
}

type pushRequest struct {
	ID    string          `json:"id"`
	Data  json.RawMessage `json:"data"`
	Users []string        `json:"users"`
	Conv  string          `json:"conv"`
	All   bool            `json:"all"`
}

func (req *pushRequest) validate() error {
	if !events.ValidID(req.ID) {
		return events.BadID()
	}
	if len(req.Data) == 0 {
		return events.Errorf(events.CodeBadRequest, "data is required")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, req.Data); err != nil {
		return events.Errorf(events.CodeBadRequest, "data must be JSON")
	}
	req.Data = compact.Bytes()
	if len(req.Data) > maxPushData {
		return events.Errorf(events.CodeTooLarge, "data is over %d bytes", maxPushData)
	}
	n := 0
	if req.Users != nil {
		n++
	}
	if req.Conv != "" {
		n++
	}
	if req.All {
		n++
	}
	if n != 1 {
		return events.Errorf(events.CodeBadRequest, `give exactly one of "users", "conv" or "all":true`)
	}
	if req.Users != nil && len(req.Users) == 0 {
		return events.Errorf(events.CodeBadRequest, "users must not be empty")
	}
	if len(req.Users) > maxPushUsers {
		return events.Errorf(events.CodeBadRequest, "at most %d users per push", maxPushUsers)
	}
	for _, u := range req.Users {
		if !events.ValidToken(u) {
			return events.Errorf(events.CodeBadRequest, "%q is not a user id", u)
		}
	}
	return nil
}

func (a *API) serverPush(w http.ResponseWriter, r *http.Request) error {
	var req pushRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	if a.opt.Server.Push == nil {
		return events.Errorf(events.CodeUnavailable, "push is not available on this process")
	}
	if _, err := a.opt.Server.Push.Push(r.Context(), push.Request{ID: req.ID, Data: req.Data, Users: req.Users, Conv: req.Conv, All: req.All}); err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"id": req.ID})
	return nil
}
