package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/oklog/ulid/v2"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/auth"
	"github.com/seqchat/seqchat/internal/membership"
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
	switch req.Kind {
	case "direct":
		if len(members) != 2 {
			return events.Errorf(events.CodeBadRequest, "a direct conversation has exactly one other member")
		}
		req.Title = ""
	case "group":
		if len(members) > a.opt.MaxGroupMembers {
			return events.Errorf(events.CodeBadRequest, "a group has at most %d members", a.opt.MaxGroupMembers)
		}
	default:
		return events.Errorf(events.CodeBadRequest, `kind must be "direct" or "group"`)
	}
	var known int
	if err := a.pool.QueryRow(ctx, "SELECT count(*) FROM users WHERE id = ANY($1)", members).Scan(&known); err != nil {
		return unavailable("look up members", err)
	}
	if known != len(members) {
		return events.Errorf(events.CodeNotFound, "some members do not exist")
	}
	conv := conversationJSON{ID: ulid.Make().String(), Kind: req.Kind, Title: req.Title, Members: members}
	status := http.StatusCreated
	create := func(tx pgx.Tx) error {
		var directKey, owner *string
		if req.Kind == "direct" {
			pair := slices.Clone(members)
			slices.Sort(pair)
			k := strings.Join(pair, ":")
			directKey = &k
			// A direct conversation between two users is unique.
			var existing string
			err := tx.QueryRow(ctx, "SELECT id FROM conversations WHERE direct_key=$1", k).Scan(&existing)
			if err == nil {
				conv.ID, status = existing, http.StatusOK
				return nil
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		} else {
			owner = &c.UserID
		}
		_, err := tx.Exec(ctx, "INSERT INTO conversations (id, kind, title, owner_id, direct_key) VALUES ($1, $2, $3, $4, $5)",
			conv.ID, req.Kind, req.Title, owner, directKey)
		if err != nil {
			return err
		}
		roles := make([]string, len(members))
		for i, m := range members {
			roles[i] = "member"
			if owner != nil && m == *owner {
				roles[i] = "owner"
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO members (conv_id, user_id, role) SELECT $1, * FROM unnest($2::text[], $3::text[])`, conv.ID, members, roles)
		return err
	}
	err := pgx.BeginFunc(ctx, a.pool, create)
	if isUniqueViolation(err) && req.Kind == "direct" {
		// Created by a concurrent request: run again to answer with that one.
		// (The body is already read, so retry the transaction, not the handler.)
		err = pgx.BeginFunc(ctx, a.pool, create)
	}
	if err != nil {
		return unavailable("create conversation", err)
	}
	writeJSON(w, status, conv)
	return nil
}

// member returns the caller's role and the seq their history starts at, or
// the protocol's error: not_found when conv does not exist, forbidden when
// the caller is not in it.
func (a *API) member(ctx context.Context, conv, user string) (role string, joined int64, err error) {
	ms, err := membership.Check(ctx, a.pool, user, conv)
	if err != nil {
		return "", 0, err
	}
	return ms[conv].Role, ms[conv].Joined, nil
}

const listQuery = `SELECT c.id, c.kind, c.title, coalesce(h.last_seq, 0), m.read_seq
	FROM members m JOIN conversations c ON c.id=m.conv_id LEFT JOIN heads h ON h.conv_id=c.id
	WHERE m.user_id=$1 AND ` + membership.Current

func (a *API) listConversations(ctx context.Context, user, only string) ([]conversationJSON, error) {
	q, args := listQuery+" ORDER BY coalesce(h.last_seq, 0) DESC, c.id", []any{user}
	if only != "" {
		q, args = listQuery+" AND c.id=$2", []any{user, only}
	}
	rows, err := a.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, unavailable("list conversations", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (conversationJSON, error) {
		var cv conversationJSON
		cv.LastSeq, cv.ReadSeq, cv.Unread = new(int64), new(int64), new(int64)
		return cv, row.Scan(&cv.ID, &cv.Kind, &cv.Title, cv.LastSeq, cv.ReadSeq)
	})
	if err != nil {
		return nil, unavailable("list conversations", err)
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
	rows, err := a.pool.Query(r.Context(), "SELECT m.user_id FROM members m WHERE m.conv_id=$1 AND "+membership.Current+" ORDER BY m.user_id", id)
	if err != nil {
		return unavailable("list members", err)
	}
	if cv.Members, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return unavailable("list members", err)
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
	var kind string
	var count int
	if err := a.pool.QueryRow(ctx, "SELECT kind, (SELECT count(*) FROM members WHERE conv_id=$1) FROM conversations WHERE id=$1", conv).Scan(&kind, &count); err != nil {
		return unavailable("look up conversation", err)
	}
	if kind != "group" {
		return events.Errorf(events.CodeBadRequest, "members can only be added to groups")
	}
	if role != "owner" && role != "admin" {
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
	var op, id, by *string
	err = a.pool.QueryRow(ctx, `INSERT INTO members (conv_id, user_id, role, joined_seq, pending_op, pending_id, pending_by)
		VALUES ($1, $2, 'member', $3, 'join', $4, $5)
		ON CONFLICT (conv_id, user_id) DO UPDATE SET pending_op = members.pending_op
		RETURNING pending_op, pending_id, pending_by`, conv, user, int64(1)<<62, ulid.Make().String(), c.UserID).Scan(&op, &id, &by)
	if err != nil {
		return unavailable("add member", err)
	}
	switch {
	case op == nil:
		w.WriteHeader(http.StatusNoContent) // already a member
		return nil
	case *op == "leave":
		return events.Errorf(events.CodeConflict, "%q is leaving this conversation; try again", user)
	}
	res, err := a.sequence(ctx, events.Command{Op: events.OpJoin, ID: *id, Conv: conv, From: *by, User: user})
	if err != nil {
		return err
	}
	if _, err := a.pool.Exec(ctx, `UPDATE members SET joined_seq=$3, pending_op=NULL, pending_id=NULL, pending_by=NULL
		WHERE conv_id=$1 AND user_id=$2 AND pending_id=$4`, conv, user, res.Seq, *id); err != nil {
		return unavailable("add member", err)
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
	var kind string
	if err := a.pool.QueryRow(ctx, "SELECT kind FROM conversations WHERE id=$1", conv).Scan(&kind); err != nil {
		return unavailable("look up conversation", err)
	}
	if kind != "group" {
		return events.Errorf(events.CodeBadRequest, "members can only leave or be removed from groups")
	}
	user := r.PathValue("user")
	if user != c.UserID && role != "owner" && role != "admin" {
		return events.Errorf(events.CodeForbidden, "only the group's owner removes others")
	}
	// Mark the member leaving first (they stop reading and sending), then
	// sequence the leave, then drop the row: a retry after a failure finds
	// the mark and sequences that same leave.
	var id, by string
	err = a.pool.QueryRow(ctx, `UPDATE members SET pending_op='leave',
			pending_id = CASE WHEN pending_op='leave' THEN pending_id ELSE $3 END,
			pending_by = CASE WHEN pending_op='leave' THEN pending_by ELSE $4 END
		WHERE conv_id=$1 AND user_id=$2 RETURNING pending_id, pending_by`, conv, user, ulid.Make().String(), c.UserID).Scan(&id, &by)
	if errors.Is(err, pgx.ErrNoRows) {
		return events.Errorf(events.CodeNotFound, "%q is not a member", user)
	}
	if err != nil {
		return unavailable("remove member", err)
	}
	if _, err := a.sequence(ctx, events.Command{Op: events.OpLeave, ID: id, Conv: conv, From: by, User: user}); err != nil {
		return err
	}
	if _, err := a.pool.Exec(ctx, "DELETE FROM members WHERE conv_id=$1 AND user_id=$2 AND pending_op='leave'", conv, user); err != nil {
		return unavailable("remove member", err)
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
