package api

import (
	"context"
	"net/http"

	"github.com/oklog/ulid/v2"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/auth"
	"github.com/seqchat/seqchat/internal/postgres"
)

type conversationJSON struct {
	ID      string   `json:"id"`
	Kind    string   `json:"kind"`
	Title   string   `json:"title"`
	Members []string `json:"members,omitempty"`
	LastSeq *int64   `json:"last_seq,omitempty"`
	ReadSeq *int64   `json:"read_seq,omitempty"`
	Unread  *int64   `json:"unread,omitempty"`
}

type createRequest struct {
	Kind    string   `json:"kind"`
	Title   string   `json:"title"`
	Members []string `json:"members"`
}

type addMemberRequest struct {
	UserID string `json:"user_id"`
}

func (a *API) createConversation(w http.ResponseWriter, r *http.Request, c auth.Claims) error {
	var req createRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	// Refuse an oversized list before doing anything per member.
	if len(req.Members) > a.opt.MaxGroupMembers {
		return events.Errorf(events.CodeBadRequest, "a group has at most %d members", a.opt.MaxGroupMembers)
	}
	members := []string{c.UserID}
	seen := map[string]bool{c.UserID: true}
	for _, m := range req.Members {
		if !seen[m] {
			seen[m] = true
			members = append(members, m)
		}
	}
	if len(req.Title) > 200 {
		return events.Errorf(events.CodeBadRequest, "title is over 200 bytes")
	}
	switch events.ConvKind(req.Kind) {
	case events.ConvDirect:
		if len(members) != 2 {
			return events.Errorf(events.CodeBadRequest, "a direct conversation has exactly one other member")
		}
		req.Title = ""
	case events.ConvGroup:
		if len(members) > a.opt.MaxGroupMembers {
			return events.Errorf(events.CodeBadRequest, "a group has at most %d members", a.opt.MaxGroupMembers)
		}
	default:
		return events.Errorf(events.CodeBadRequest, `kind must be "direct" or "group"`)
	}
	known, err := a.stores.Accounts.CountExisting(ctx, members)
	if err != nil {
		return err
	}
	if known != len(members) {
		return events.Errorf(events.CodeNotFound, "some members do not exist")
	}
	conv := conversationJSON{ID: ulid.Make().String(), Kind: req.Kind, Title: req.Title, Members: members}
	var owner string
	if events.ConvKind(req.Kind) == events.ConvGroup {
		owner = c.UserID
	}
	roles := make([]string, len(members))
	for i, m := range members {
		roles[i] = string(events.RoleMember)
		if owner != "" && m == owner {
			roles[i] = string(events.RoleOwner)
		}
	}
	// A direct conversation between two users is unique: asking again
	// answers the one there is.
	id, created, err := a.stores.Conversations.Create(ctx, postgres.NewConversation{
		ID: conv.ID, Kind: req.Kind, Title: req.Title, Owner: owner, Members: members, Roles: roles,
	})
	if err != nil {
		return err
	}
	conv.ID = id
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
	}
	writeJSON(w, status, conv)
	return nil
}

// member returns the caller's role and the seq their history starts at, or
// the protocol's error: not_found when conv does not exist, forbidden when
// the caller is not in it.
func (a *API) member(ctx context.Context, conv, user string) (role string, joined int64, err error) {
	ms, err := a.stores.Members.Check(ctx, user, conv)
	if err != nil {
		return "", 0, err
	}
	return ms[conv].Role, ms[conv].Joined, nil
}

func (a *API) listConversations(ctx context.Context, user, only string) ([]conversationJSON, error) {
	rows, err := a.stores.Conversations.List(ctx, user, only)
	if err != nil {
		return nil, err
	}
	list := make([]conversationJSON, len(rows))
	for i, s := range rows {
		list[i] = conversationJSON{ID: s.ID, Kind: s.Kind, Title: s.Title, LastSeq: &s.LastSeq, ReadSeq: &s.ReadSeq, Unread: new(int64)}
	}
	counts, err := a.opt.Unread.Counts(ctx, user)
	if err != nil {
		// The list is how a client learns its conversations and their
		// last_seq; Redis holds only the counts, which are rebuildable.
		// While it is away the list still answers, without "unread"
		// (GET /v1/unread says unavailable meanwhile).
		a.opt.Log.Debug("conversation list without unread counts", "err", err)
		for i := range list {
			list[i].Unread = nil
		}
		return list, nil
	}
	for i := range list {
		*list[i].Unread = counts[list[i].ID]
	}
	return list, nil
}

func (a *API) conversations(w http.ResponseWriter, r *http.Request, c auth.Claims) error {
	list, err := a.listConversations(r.Context(), c.UserID, "")
	if err != nil {
		return err
	}
	if list == nil {
		list = []conversationJSON{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"conversations": list})
	return nil
}

func (a *API) conversation(w http.ResponseWriter, r *http.Request, c auth.Claims) error {
	id := r.PathValue("id")
	if _, _, err := a.member(r.Context(), id, c.UserID); err != nil {
		return err
	}
	list, err := a.listConversations(r.Context(), c.UserID, id)
	if err != nil {
		return err
	}
	if len(list) == 0 {
		return events.NotMember(id)
	}
	cv := list[0]
	if cv.Members, err = a.stores.Conversations.Members(r.Context(), id); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, cv)
	return nil
}

func (a *API) addMember(w http.ResponseWriter, r *http.Request, c auth.Claims) error {
	var req addMemberRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	ctx, conv := r.Context(), r.PathValue("id")
	role, _, err := a.member(ctx, conv, c.UserID)
	if err != nil {
		return err
	}
	kind, count, err := a.stores.Conversations.Kind(ctx, conv)
	if err != nil {
		return err
	}
	if events.ConvKind(kind) != events.ConvGroup {
		return events.Errorf(events.CodeBadRequest, "members can only be added to groups")
	}
	if !events.Role(role).Privileged() {
		return events.Errorf(events.CodeForbidden, "only the group's owner adds members")
	}
	user, err := a.resolveUser(ctx, req.UserID)
	if err != nil {
		return err
	}
	if count >= a.opt.MaxGroupMembers {
		return events.Errorf(events.CodeBadRequest, "a group has at most %d members", a.opt.MaxGroupMembers)
	}
	// History is hidden until the join is sequenced; then it starts there.
	// The join's command id is kept with the row, so that a retry after a
	// failure sequences that same join (once) rather than none.
	p, err := a.stores.Conversations.BeginJoin(ctx, conv, user, ulid.Make().String(), c.UserID)
	if err != nil {
		return err
	}
	switch p.Op {
	case "":
		w.WriteHeader(http.StatusNoContent) // already a member
		return nil
	case events.OpLeave:
		return events.Errorf(events.CodeConflict, "%q is leaving this conversation; try again", user)
	}
	res, err := a.sequence(ctx, events.Command{Op: events.OpJoin, ID: p.ID, Conv: conv, From: p.By, User: user})
	if err != nil {
		return err
	}
	if err := a.stores.Conversations.FinishJoin(ctx, conv, user, res.Seq, p.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) removeMember(w http.ResponseWriter, r *http.Request, c auth.Claims) error {
	ctx, conv := r.Context(), r.PathValue("id")
	role, _, err := a.member(ctx, conv, c.UserID)
	if err != nil {
		return err
	}
	// Like adding, groups only: a direct conversation is unique per pair, so
	// one that lost a member could never be joined or asked for again.
	kind, _, err := a.stores.Conversations.Kind(ctx, conv)
	if err != nil {
		return err
	}
	if events.ConvKind(kind) != events.ConvGroup {
		return events.Errorf(events.CodeBadRequest, "members can only leave or be removed from groups")
	}
	user := r.PathValue("user")
	if user != c.UserID && !events.Role(role).Privileged() {
		return events.Errorf(events.CodeForbidden, "only the group's owner removes others")
	}
	// Mark the member leaving first (they stop reading and sending), then
	// sequence the leave, then drop the row: a retry after a failure finds
	// the mark and sequences that same leave.
	p, err := a.stores.Conversations.BeginLeave(ctx, conv, user, ulid.Make().String(), c.UserID)
	if err != nil {
		return err
	}
	if _, err := a.sequence(ctx, events.Command{Op: events.OpLeave, ID: p.ID, Conv: conv, From: p.By, User: user}); err != nil {
		return err
	}
	if err := a.stores.Conversations.FinishLeave(ctx, conv, user); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// sequence submits cmd and waits for its seq, at most CommandTimeout.
func (a *API) sequence(ctx context.Context, cmd events.Command) (events.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, a.opt.CommandTimeout)
	defer cancel()
	return a.submit.Submit(ctx, cmd, "")
}
