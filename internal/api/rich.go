package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/auth"
)

// The richer messages' REST calls: edit, react, a message's reactions.
func (a *API) mountRich(mux Router) {
	mux.HandleFunc("POST /v1/conversations/{id}/edit", a.authed(a.edit))
	mux.HandleFunc("POST /v1/conversations/{id}/reactions", a.authed(a.react))
	mux.HandleFunc("GET /v1/conversations/{id}/messages/{seq}/reactions", a.authed(a.reactions))
	mux.HandleFunc("GET /v1/search", a.authed(a.search))
}

const (
	defaultSearch = 20
	maxSearch     = 100
	maxQuery      = 1000 // bytes of q: a search is words, not documents
)

func (a *API) search(w http.ResponseWriter, r *http.Request, c auth.Claims) error {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if q == "" {
		return events.Errorf(events.CodeBadRequest, "q must hold at least one word")
	}
	if len(q) > maxQuery || !utf8.ValidString(q) {
		return events.Errorf(events.CodeBadRequest, "q must be at most %d bytes of UTF-8", maxQuery)
	}
	limit, hasLimit, err := queryInt(r, "limit")
	if err != nil {
		return err
	}
	if !hasLimit || limit == 0 {
		limit = defaultSearch
	}
	limit = min(limit, maxSearch)
	conv := r.URL.Query().Get("conv")
	if conv != "" {
		if _, _, err := a.member(r.Context(), conv, c.UserID); err != nil {
			return err
		}
	}
	list, err := a.history.Search(r.Context(), c.UserID, q, conv, int(limit))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": list})
	return nil
}

type editRequest struct {
	ID     string          `json:"id"`
	Target int64           `json:"target"`
	Body   json.RawMessage `json:"body"`
}

func (req *editRequest) validate() error {
	// The body follows send's rules (and is compacted like send's).
	send := sendRequest{ID: req.ID, Body: req.Body}
	if err := send.validate(); err != nil {
		return err
	}
	req.Body = send.Body
	if req.Target < 1 {
		return events.Errorf(events.CodeBadRequest, "target must be a seq")
	}
	return nil
}

func (a *API) edit(w http.ResponseWriter, r *http.Request, c auth.Claims) error {
	var req editRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	res, err := a.memberCommand(r, c, events.Command{Op: events.OpEdit, ID: req.ID, Conv: r.PathValue("id"), From: c.UserID, Target: req.Target, Body: req.Body})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int64{"seq": res.Seq, "ts": res.TS})
	return nil
}

type reactRequest struct {
	ID     string `json:"id"`
	Target int64  `json:"target"`
	Emoji  string `json:"emoji"`
	On     *bool  `json:"on"`
}

func (req *reactRequest) validate() error {
	if !events.ValidID(req.ID) {
		return events.BadID()
	}
	if req.Target < 1 {
		return events.Errorf(events.CodeBadRequest, "target must be a seq")
	}
	if err := events.CheckEmoji(req.Emoji); err != nil {
		return err
	}
	if req.On == nil {
		return events.Errorf(events.CodeBadRequest, "on must be true or false")
	}
	return nil
}

func (a *API) react(w http.ResponseWriter, r *http.Request, c auth.Claims) error {
	var req reactRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	res, err := a.memberCommand(r, c, events.Command{Op: events.OpReact, ID: req.ID, Conv: r.PathValue("id"), From: c.UserID, Target: req.Target, Emoji: req.Emoji, On: req.On})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int64{"seq": res.Seq, "ts": res.TS})
	return nil
}

func (a *API) reactions(w http.ResponseWriter, r *http.Request, c auth.Claims) error {
	seq, err := strconv.ParseInt(r.PathValue("seq"), 10, 64)
	if err != nil || seq < 1 {
		return events.Errorf(events.CodeBadRequest, "seq must be a positive integer")
	}
	ctx, conv := r.Context(), r.PathValue("id")
	_, joined, err := a.member(ctx, conv, c.UserID)
	if err != nil {
		return err
	}
	// A later joiner sees history from the join on: an earlier message is
	// not theirs to see.
	if seq < joined {
		return events.Errorf(events.CodeNotFound, "no message %d", seq)
	}
	list, err := a.history.Reactions(ctx, conv, seq)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"reactions": list})
	return nil
}
