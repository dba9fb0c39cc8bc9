package api

import (
	"context"
	"math"
	"net/http"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/activity"
	"github.com/seqchat/seqchat/internal/auth"
)

var usernameRE = regexp.MustCompile(`^[a-z0-9_.-]{3,32}$`)

// dummyHash is compared against when a username is unknown, so that a
// failed login takes as long whether or not the user exists.
var dummyHash, _ = auth.HashPassword("not a real password", 4)

type registerRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (req *registerRequest) validate() error {
	if !usernameRE.MatchString(req.Username) {
		return events.Errorf(events.CodeBadRequest, "username must be 3–32 of [a-z0-9_.-]")
	}
	if utf8.RuneCountInString(req.Password) < 8 {
		return events.Errorf(events.CodeBadRequest, "password must be at least 8 characters")
	}
	if len(req.Password) > 72 {
		return events.Errorf(events.CodeBadRequest, "password must be at most 72 bytes")
	}
	return nil
}

func (a *API) register(w http.ResponseWriter, r *http.Request) error {
	var req registerRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	addrKey := "signup:addr:" + a.clientAddr(r)
	if err := a.over(r.Context(), activity.SignupsPerAddr, addrKey, a.opt.SignupsPerAddr, "too many accounts created from this address"); err != nil {
		return err
	}
	hash, err := auth.HashPassword(req.Password, a.opt.PasswordCost)
	if err != nil {
		return err
	}
	id := ulid.Make().String()
	if err := a.stores.Accounts.CreateUser(r.Context(), id, req.Username, hash); err != nil {
		return err
	}
	a.hit(r.Context(), addrKey, a.opt.SignupsPerAddr)
	writeJSON(w, http.StatusCreated, map[string]string{"id": id, "username": req.Username})
	return nil
}

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Device   string `json:"device"`
}

func (a *API) login(w http.ResponseWriter, r *http.Request) error {
	var req loginRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	// Failed logins count against the address and, for a name that could
	// exist, against the username: guessing one account's password from
	// many addresses, or many accounts' from one, both hit a wall.
	ctx := r.Context()
	keys := []string{"login-fail:addr:" + a.clientAddr(r)}
	limits := []activity.Limit{a.opt.LoginFailuresPerAddr}
	names := []string{activity.LoginFailuresPerAddr}
	if usernameRE.MatchString(req.Username) {
		keys = append(keys, "login-fail:user:"+req.Username)
		limits = append(limits, a.opt.LoginFailuresPerUser)
		names = append(names, activity.LoginFailuresPerUser)
	}
	for i, k := range keys {
		if err := a.over(ctx, names[i], k, limits[i], "too many failed logins"); err != nil {
			return err
		}
	}
	failed := func() error {
		for i, k := range keys {
			a.hit(ctx, k, limits[i])
		}
		return events.Errorf(events.CodeUnauthorized, "wrong username or password")
	}
	// A user created by the app's backend has no password hash: no
	// password logs in as them.
	id, hash, err := a.stores.Accounts.Credentials(ctx, req.Username)
	if err != nil {
		return err
	}
	if hash == "" {
		auth.CheckPassword(dummyHash, req.Password)
		return failed()
	}
	if !auth.CheckPassword(hash, req.Password) {
		return failed()
	}
	if len(keys) > 1 && a.opt.Limits != nil {
		_ = a.opt.Limits.Reset(ctx, keys[1], limits[1]) // the owner got in: start over
	}
	return a.issueSession(w, id, req.Device)
}

// issueSession answers a new session of user id, as login gives it.
func (a *API) issueSession(w http.ResponseWriter, id, device string) error {
	if len(device) > 64 {
		device = device[:64]
	}
	tok, c, err := a.tokens.Issue(id, ulid.Make().String(), device, time.Now())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": tok, "user_id": id, "expires_at": c.ExpiresAt.UTC().Format(time.RFC3339)})
	return nil
}

func (a *API) logout(w http.ResponseWriter, r *http.Request, c auth.Claims) error {
	if a.opt.Revocations != nil {
		if err := a.opt.Revocations.Revoke(r.Context(), c); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err := a.stores.Sessions.Revoke(r.Context(), c.SessionID, c.ExpiresAt); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// checkRevoked refuses a token whose session was logged out: in memory
// when the revocation set is wired (no round trip per request).
func (a *API) checkRevoked(ctx context.Context, c auth.Claims) error {
	if a.opt.Revocations != nil {
		return a.opt.Revocations.Check(c)
	}
	revoked, err := a.stores.Sessions.IsRevoked(ctx, c.SessionID)
	if err != nil {
		return err
	}
	if revoked {
		return events.LoggedOut()
	}
	return nil
}

func (a *API) me(w http.ResponseWriter, r *http.Request, c auth.Claims) error {
	name, ok, err := a.stores.Accounts.Username(r.Context(), c.UserID)
	if err != nil {
		return err
	}
	if !ok {
		return events.Errorf(events.CodeUnauthorized, "user no longer exists")
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": c.UserID, "username": name})
	return nil
}

// resolveUser accepts a user id or a username.
func (a *API) resolveUser(ctx context.Context, ref string) (string, error) {
	return a.stores.Accounts.ResolveUser(ctx, ref)
}

func (a *API) addFriend(w http.ResponseWriter, r *http.Request, c auth.Claims) error {
	id, err := a.resolveUser(r.Context(), r.PathValue("user"))
	if err != nil {
		return err
	}
	if id == c.UserID {
		return events.Errorf(events.CodeBadRequest, "you cannot befriend yourself")
	}
	// Friendship is mutual: befriending is for both.
	if err := a.stores.Friends.Add(r.Context(), c.UserID, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) removeFriend(w http.ResponseWriter, r *http.Request, c auth.Claims) error {
	id, err := a.resolveUser(r.Context(), r.PathValue("user"))
	if err != nil {
		return err
	}
	if err := a.stores.Friends.Remove(r.Context(), c.UserID, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type friend struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Online   bool   `json:"online"`
}

func (a *API) friends(w http.ResponseWriter, r *http.Request, c auth.Claims) error {
	users, err := a.stores.Friends.List(r.Context(), c.UserID)
	if err != nil {
		return err
	}
	list := make([]friend, len(users))
	for i, u := range users {
		list[i] = friend{ID: u.ID, Username: u.Username}
	}
	if a.opt.Online != nil && len(list) > 0 {
		ids := make([]string, len(list))
		for i, f := range list {
			ids[i] = f.ID
		}
		// Presence is a nicety: a Redis hiccup shows friends offline, not an error.
		if online, err := a.opt.Online(r.Context(), ids); err == nil {
			for i := range list {
				list[i].Online = online[list[i].ID]
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"friends": list})
	return nil
}

// unavailable wraps a store failure: the client may retry.
func unavailable(what string, err error) error {
	return events.StoreUnavailable(what, err)
}

// over answers rate_limited when key used up its limit. A limit that cannot
// be read lets the request through: Redis being down must not lock
// everyone out.
func (a *API) over(ctx context.Context, name, key string, l activity.Limit, msg string) error {
	if a.opt.Limits == nil || l.Max <= 0 {
		return nil
	}
	over, retry, err := a.opt.Limits.Over(ctx, key, l)
	if err != nil {
		a.opt.Log.Warn("rate limit unavailable", "err", err)
		return nil
	}
	if over {
		return a.refused(name, events.RateLimited(retry, "%s; retry in %ds", msg, int(math.Ceil(retry.Seconds()))))
	}
	return nil
}

// hit counts one against key's limit.
func (a *API) hit(ctx context.Context, key string, l activity.Limit) {
	if a.opt.Limits == nil || l.Max <= 0 {
		return
	}
	if _, _, err := a.opt.Limits.Hit(ctx, key, l); err != nil {
		a.opt.Log.Warn("rate limit unavailable", "err", err)
	}
}
