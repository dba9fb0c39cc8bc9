package postgres

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seqchat/seqchat/events"
)

// Conversations keeps the conversations and who is in them: creating one,
// adding and removing members (in two steps around the sequenced join or
// leave), and listing them.
type Conversations struct{ pool *pgxpool.Pool }

// NewConversations returns the conversations kept in pool.
func NewConversations(pool *pgxpool.Pool) *Conversations { return &Conversations{pool: pool} }

// NewConversation is a conversation to create.
type NewConversation struct {
	ID, Kind, Title string
	// Owner is the group's owner; empty for a direct conversation.
	Owner string
	// Members and Roles go together: Roles[i] is Members[i]'s role.
	Members, Roles []string
}

// Create stores conv with its members and returns its id. A direct
// conversation between two users is unique: when theirs exists already,
// Create returns that one's id and created is false.
func (c *Conversations) Create(ctx context.Context, conv NewConversation) (id string, created bool, err error) {
	id, created = conv.ID, true
	var directKey, owner *string
	if conv.Kind == string(events.ConvDirect) {
		pair := slices.Clone(conv.Members)
		slices.Sort(pair)
		k := strings.Join(pair, ":")
		directKey = &k
	}
	if conv.Owner != "" {
		owner = &conv.Owner
	}
	create := func(tx pgx.Tx) error {
		if directKey != nil {
			var existing string
			err := tx.QueryRow(ctx, "SELECT id FROM conversations WHERE direct_key=$1", *directKey).Scan(&existing)
			if err == nil {
				id, created = existing, false
				return nil
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		_, err := tx.Exec(ctx, "INSERT INTO conversations (id, kind, title, owner_id, direct_key) VALUES ($1, $2, $3, $4, $5)",
			conv.ID, conv.Kind, conv.Title, owner, directKey)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO members (conv_id, user_id, role) SELECT $1, * FROM unnest($2::text[], $3::text[])`, conv.ID, conv.Members, conv.Roles)
		return err
	}
	err = pgx.BeginFunc(ctx, c.pool, create)
	if isUniqueViolation(err) && directKey != nil {
		// Created by a concurrent request: run again to answer with that one.
		err = pgx.BeginFunc(ctx, c.pool, create)
	}
	if err != nil {
		return "", false, unavailable("create conversation", err)
	}
	return id, created, nil
}

// Summary is one conversation in a user's list.
type Summary struct {
	ID, Kind, Title string
	// LastSeq is the conversation's last seq; ReadSeq the user's read pointer.
	LastSeq, ReadSeq int64
}

const listQuery = `SELECT c.id, c.kind, c.title, coalesce(h.last_seq, 0), m.read_seq
	FROM members m JOIN conversations c ON c.id=m.conv_id LEFT JOIN heads h ON h.conv_id=c.id
	WHERE m.user_id=$1 AND ` + currentMember

// List returns the conversations user is a member of, the latest first; only
// conv when conv is not empty.
func (c *Conversations) List(ctx context.Context, user, conv string) ([]Summary, error) {
	q, args := listQuery+" ORDER BY coalesce(h.last_seq, 0) DESC, c.id", []any{user}
	if conv != "" {
		q, args = listQuery+" AND c.id=$2", []any{user, conv}
	}
	rows, err := c.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, unavailable("list conversations", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Summary, error) {
		var s Summary
		return s, row.Scan(&s.ID, &s.Kind, &s.Title, &s.LastSeq, &s.ReadSeq)
	})
	if err != nil {
		return nil, unavailable("list conversations", err)
	}
	return list, nil
}

// Members returns the ids of conv's members, in order.
func (c *Conversations) Members(ctx context.Context, conv string) ([]string, error) {
	rows, err := c.pool.Query(ctx, "SELECT m.user_id FROM members m WHERE m.conv_id=$1 AND "+currentMember+" ORDER BY m.user_id", conv)
	if err != nil {
		return nil, unavailable("list members", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, unavailable("list members", err)
	}
	return ids, nil
}

// Kind returns conv's kind and how many member rows it has (joining and
// leaving members included).
func (c *Conversations) Kind(ctx context.Context, conv string) (kind string, rows int, err error) {
	if err := c.pool.QueryRow(ctx, "SELECT kind, (SELECT count(*) FROM members WHERE conv_id=$1) FROM conversations WHERE id=$1", conv).Scan(&kind, &rows); err != nil {
		return "", 0, unavailable("look up conversation", err)
	}
	return kind, rows, nil
}

// Pending is a join or leave stored but not yet sequenced: the command id it
// is sequenced under and who asked for it, kept so that a retry after a
// failure sequences that same command (once) rather than none.
type Pending struct {
	// Op is events.OpJoin or events.OpLeave; empty when nothing is pending.
	Op     events.Op
	ID, By string
}

// farFuture is the joined_seq of a join in flight: history is hidden until
// the join is sequenced.
const farFuture = int64(1) << 62

// BeginJoin adds user to conv as a member whose history starts once the
// join is sequenced, under command id by by. When user has a row already it
// is left alone and its pending operation returned: none when user is a
// member, "leave" when they are leaving, or the earlier join in flight.
func (c *Conversations) BeginJoin(ctx context.Context, conv, user, id, by string) (Pending, error) {
	var op, pid, pby *string
	err := c.pool.QueryRow(ctx, `INSERT INTO members (conv_id, user_id, role, joined_seq, pending_op, pending_id, pending_by)
		VALUES ($1, $2, 'member', $3, 'join', $4, $5)
		ON CONFLICT (conv_id, user_id) DO UPDATE SET pending_op = members.pending_op
		RETURNING pending_op, pending_id, pending_by`, conv, user, farFuture, id, by).Scan(&op, &pid, &pby)
	if err != nil {
		return Pending{}, unavailable("add member", err)
	}
	if op == nil {
		return Pending{}, nil
	}
	return Pending{Op: events.Op(*op), ID: deref(pid), By: deref(pby)}, nil
}

// FinishJoin starts user's history in conv at seq, the seq join id was
// sequenced at.
func (c *Conversations) FinishJoin(ctx context.Context, conv, user string, seq int64, id string) error {
	if _, err := c.pool.Exec(ctx, `UPDATE members SET joined_seq=$3, pending_op=NULL, pending_id=NULL, pending_by=NULL
		WHERE conv_id=$1 AND user_id=$2 AND pending_id=$4`, conv, user, seq, id); err != nil {
		return unavailable("add member", err)
	}
	return nil
}

// BeginLeave marks user leaving conv (from now on they no longer read or
// send) under command id by by, and returns the leave to sequence: a leave
// marked earlier keeps its own id and asker. not_found when user is not a
// member.
func (c *Conversations) BeginLeave(ctx context.Context, conv, user, id, by string) (Pending, error) {
	p := Pending{Op: events.OpLeave}
	err := c.pool.QueryRow(ctx, `UPDATE members SET pending_op='leave',
			pending_id = CASE WHEN pending_op='leave' THEN pending_id ELSE $3 END,
			pending_by = CASE WHEN pending_op='leave' THEN pending_by ELSE $4 END
		WHERE conv_id=$1 AND user_id=$2 RETURNING pending_id, pending_by`, conv, user, id, by).Scan(&p.ID, &p.By)
	if errors.Is(err, pgx.ErrNoRows) {
		return Pending{}, events.Errorf(events.CodeNotFound, "%q is not a member", user)
	}
	if err != nil {
		return Pending{}, unavailable("remove member", err)
	}
	return p, nil
}

// FinishLeave drops the row of user, whose leave of conv is sequenced.
func (c *Conversations) FinishLeave(ctx context.Context, conv, user string) error {
	if _, err := c.pool.Exec(ctx, "DELETE FROM members WHERE conv_id=$1 AND user_id=$2 AND pending_op='leave'", conv, user); err != nil {
		return unavailable("remove member", err)
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
