package api

import (
	"encoding/json"
	"net/http"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/activity"
	"github.com/seqchat/seqchat/internal/auth"
)

const (
	defaultPage = 50
	maxPage     = 200
)

func (a *API) messages(w http.ResponseWriter, r *http.Request, c auth.Claims) error {
	after, hasAfter, err := queryInt(r, "after_seq")
	if err != nil {
		return err
	}
	before, hasBefore, err := queryInt(r, "before_seq")
	if err != nil {
		return err
	}
	limit, hasLimit, err := queryInt(r, "limit")
	if err != nil {
		return err
	}
	if hasAfter && hasBefore {
		return events.Errorf(events.CodeBadRequest, "give after_seq or before_seq, not both")
	}
	if !hasLimit || limit == 0 {
		limit = defaultPage
	}
	limit = min(limit, maxPage)
	ctx, conv := r.Context(), r.PathValue("id")
	_, joined, err := a.member(ctx, conv, c.UserID)
	if err != nil {
		return err
	}
	head, err := a.history.Head(ctx, conv)
	if err != nil {
		return err
	}
	// The page is the seq range [from, to]; a member sees history from the
	// seq they joined at on.
	first := max(joined, 1)
	var from, to int64
	var hasMore bool
	switch {
	case hasAfter:
		from = max(after+1, first)
		to = min(from+limit-1, head)
		hasMore = to < head
	case hasBefore:
		to = min(before-1, head)
		from = max(to-limit+1, first)
		hasMore = from > first && to >= first
	default:
		to = head
		from = max(head-limit+1, first)
		hasMore = from > first
	}
	list, err := a.history.Range(ctx, conv, from, to)
	if err != nil {
		return err
	}
	if list == nil {
		list = []events.Event{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": list, "head": head, "has_more": hasMore})
	return nil
}

type sendRequest struct {
	ID       string          `json:"id"`
	Body     json.RawMessage `json:"body"`
	ReplyTo  int64           `json:"reply_to"`
	Mentions []string        `json:"mentions"`
}

// validate checks the request and compacts its body.
func (req *sendRequest) validate() error {
	if !events.ValidID(req.ID) {
		return events.BadID()
	}
	if events.BodyMissing(req.Body) {
		return events.Errorf(events.CodeBadRequest, "body is required")
	}
	body, err := events.CheckBody(req.Body)
	if err != nil {
		return err
	}
	req.Body = body
	return events.CheckReferences(req.ReplyTo, req.Mentions)
}

// memberCommand sequences a member's command: the caller's command limit,
// their membership, then the sequencer's answer.
func (a *API) memberCommand(r *http.Request, c auth.Claims, cmd events.Command) (events.Result, error) {
	if err := a.allowCommand(c.UserID); err != nil {
		return events.Result{}, err
	}
	if _, _, err := a.member(r.Context(), cmd.Conv, c.UserID); err != nil {
		return events.Result{}, err
	}
	return a.sequence(r.Context(), cmd)
}

func (a *API) send(w http.ResponseWriter, r *http.Request, c auth.Claims) error {
	var req sendRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	res, err := a.memberCommand(r, c, events.Command{Op: events.OpSend, ID: req.ID, Conv: r.PathValue("id"), From: c.UserID, Body: req.Body,
		ReplyTo: req.ReplyTo, Mentions: req.Mentions})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int64{"seq": res.Seq, "ts": res.TS})
	return nil
}

type readRequest struct {
	Seq *int64 `json:"seq"`
}

func (req *readRequest) validate() error {
	if req.Seq == nil || *req.Seq < 0 {
		return events.NotNonNegative("seq")
	}
	return nil
}

func (a *API) read(w http.ResponseWriter, r *http.Request, c auth.Claims) error {
	var req readRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	ctx, conv := r.Context(), r.PathValue("id")
	if _, _, err := a.member(ctx, conv, c.UserID); err != nil {
		return err
	}
	if _, err := a.opt.Reads.Read(ctx, c.UserID, conv, *req.Seq, ""); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type recallRequest struct {
	ID     string `json:"id"`
	Target int64  `json:"target"`
}

func (req *recallRequest) validate() error {
	if !events.ValidID(req.ID) {
		return events.BadID()
	}
	if req.Target < 1 {
		return events.Errorf(events.CodeBadRequest, "target must be a seq")
	}
	return nil
}

func (a *API) recall(w http.ResponseWriter, r *http.Request, c auth.Claims) error {
	var req recallRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	res, err := a.memberCommand(r, c, events.Command{Op: events.OpRecall, ID: req.ID, Conv: r.PathValue("id"), From: c.UserID, Target: req.Target})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int64{"seq": res.Seq})
	return nil
}

func (a *API) unread(w http.ResponseWriter, r *http.Request, c auth.Claims) error {
	per, err := a.opt.Unread.Counts(r.Context(), c.UserID)
	if err != nil {
		return unavailable("count unread", err)
	}
	var total int64
	for _, n := range per {
		total += n
	}
	mentions, err := a.opt.Unread.MentionCounts(r.Context(), c.UserID)
	if err != nil {
		return unavailable("count mentions", err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"total": total, "conversations": per, "mentions": mentions})
	return nil
}

// receipts lists every member's read pointer (docs/protocol.md).
func (a *API) receipts(w http.ResponseWriter, r *http.Request, c auth.Claims) error {
	conv := r.PathValue("id")
	if _, _, err := a.member(r.Context(), conv, c.UserID); err != nil {
		return err
	}
	of, err := a.opt.Reads.Of(r.Context(), conv)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"receipts": of})
	return nil
}

// allowCommand applies the per-user command limit the edges share.
func (a *API) allowCommand(user string) error {
	if a.opt.UserLimit == nil {
		return nil
	}
	if ok, retry := a.opt.UserLimit.Allow(user); !ok {
		return a.refused(activity.UserCommands, events.TooManyUserCommands(retry))
	}
	return nil
}
