package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/internal/postgres"
	"github.com/seqchat/seqchat/internal/projector/history"
	unreadprojector "github.com/seqchat/seqchat/internal/projector/unread"
	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/internal/wiring"
	"github.com/seqchat/seqchat/unread"
)

// richEvent is an event with the richer messages' fields.
type richEvent struct {
	Seq       int64            `json:"seq"`
	Kind      string           `json:"kind"`
	From      string           `json:"from"`
	Body      json.RawMessage  `json:"body"`
	Target    int64            `json:"target"`
	Recalled  bool             `json:"recalled"`
	ReplyTo   int64            `json:"reply_to"`
	Mentions  []string         `json:"mentions"`
	Emoji     string           `json:"emoji"`
	On        *bool            `json:"on"`
	Edited    bool             `json:"edited"`
	EditedSeq int64            `json:"edited_seq"`
	Reactions map[string]int64 `json:"reactions"`
}

// richPage returns conv's latest events as u sees them, and the raw page.
func (e *env) richPage(t *testing.T, u user, conv string) (map[int64]richEvent, string) {
	t.Helper()
	r := e.do(t, "GET", "/v1/conversations/"+conv+"/messages?limit=200", u.Token, nil)
	var p struct {
		Events []richEvent `json:"events"`
	}
	r.ok(t, http.StatusOK, &p)
	out := map[int64]richEvent{}
	for _, ev := range p.Events {
		out[ev.Seq] = ev
	}
	return out, string(r.body)
}

func (e *env) post(t *testing.T, u user, conv, what string, body map[string]any) resp {
	t.Helper()
	return e.do(t, "POST", "/v1/conversations/"+conv+"/"+what, u.Token, body)
}

// seqOf asserts a command's answer like send's and returns its seq.
func seqOf(t *testing.T, r resp) int64 {
	t.Helper()
	var s sent
	r.ok(t, http.StatusOK, &s)
	keys(t, r.body, "seq", "ts")
	if s.Seq < 1 || s.TS <= 0 {
		t.Fatalf("bad answer %s", r.body)
	}
	return s.Seq
}

func (e *env) reactionsOf(t *testing.T, u user, conv string, seq int64) map[string][]string {
	t.Helper()
	var out struct {
		Reactions map[string][]string `json:"reactions"`
	}
	r := e.do(t, "GET", fmt.Sprintf("/v1/conversations/%s/messages/%d/reactions", conv, seq), u.Token, nil)
	r.ok(t, http.StatusOK, &out)
	keys(t, r.body, "reactions")
	if out.Reactions == nil {
		t.Fatalf("reactions must be an object: %s", r.body)
	}
	return out.Reactions
}

// runHistory runs a history projector until the returned stop is called.
func runHistory(t *testing.T, a *wiring.System) (stop func()) {
	p := history.NewProjector(postgres.NewHistoryWriter(a.Pool), a.NATS.JS, 5, 0, testenv.Logger(t), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := p.Run(ctx); err != nil && ctx.Err() == nil {
				t.Log("history projector restarts:", err)
			}
		}
	}()
	return func() { cancel(); <-done }
}

func (e *env) waitProjected(t *testing.T, conv string, seq int64) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, fmt.Sprintf("history of %s projected up to %d", conv, seq), func() bool {
		var last int64
		_ = e.pool.QueryRow(context.Background(), "SELECT coalesce((SELECT last_seq FROM heads WHERE conv_id=$1), 0)", conv).Scan(&last)
		return last >= seq
	})
}

// Edits, reactions, replies and mentions: every rule over REST, history's
// current state while the projector lags (read-your-writes), once it has
// caught up, and after a rebuild from TIMELINE.
func TestRichMessages(t *testing.T) {
	t.Parallel()
	e, a := startRoles(t, testenv.Config(t), wiring.API, wiring.Sequencer) // the history projector runs by hand
	x, y, z := e.register(t, "richx"), e.register(t, "richy"), e.register(t, "richz")
	g := e.createConv(t, x, "group", "rich", y.ID)
	other := e.createConv(t, x, "direct", "", z.ID)
	stop := runHistory(t, a)

	m1 := e.send(t, x, g.ID, "m1", map[string]string{"text": "hello world"}).Seq
	m2 := e.send(t, y, g.ID, "m2", map[string]string{"text": "second"}).Seq
	otherMsg := e.send(t, x, other.ID, "o1", map[string]string{"text": "elsewhere"}).Seq
	up := seqOf(t, e.post(t, y, g.ID, "reactions", map[string]any{"id": "r0", "target": m1, "emoji": "👍", "on": true}))
	e.waitProjected(t, g.ID, up)
	// From here on the projector lags: everything must show from TIMELINE.
	stop()

	// Edit: only the sender, any time, a message that exists.
	e.post(t, y, g.ID, "edit", map[string]any{"id": "e0", "target": m1, "body": map[string]string{"text": "hacked"}}).fails(t, 403, "forbidden")
	e.post(t, z, g.ID, "edit", map[string]any{"id": "e0", "target": m1, "body": map[string]string{"text": "hacked"}}).fails(t, 403, "forbidden")
	e.do(t, "POST", "/v1/conversations/nope/edit", x.Token, map[string]any{"id": "e0", "target": m1, "body": 1}).fails(t, 404, "not_found")
	e.post(t, x, g.ID, "edit", map[string]any{"id": "e0", "target": 999, "body": map[string]string{"text": "x"}}).fails(t, 404, "not_found")
	e.post(t, x, g.ID, "edit", map[string]any{"id": "e0", "target": otherMsg + 50, "body": 1}).fails(t, 404, "not_found")
	e.post(t, x, g.ID, "edit", map[string]any{"id": "e0", "target": 0, "body": 1}).fails(t, 400, "bad_request")
	e.post(t, x, g.ID, "edit", map[string]any{"id": "e0", "target": m1}).fails(t, 400, "bad_request")
	e.post(t, x, g.ID, "edit", map[string]any{"id": "bad id", "target": m1, "body": 1}).fails(t, 400, "bad_request")
	e1 := seqOf(t, e.post(t, x, g.ID, "edit", map[string]any{"id": "e1", "target": m1, "body": map[string]string{"text": "hello edited world"}}))
	if again := seqOf(t, e.post(t, x, g.ID, "edit", map[string]any{"id": "e1", "target": m1, "body": map[string]string{"text": "hello edited world"}})); again != e1 {
		t.Fatalf("resent edit got seq %d, want %d", again, e1)
	}
	e.post(t, x, g.ID, "edit", map[string]any{"id": "e2", "target": e1, "body": 1}).fails(t, 400, "bad_request") // an edit is not a message
	e2 := seqOf(t, e.post(t, y, g.ID, "edit", map[string]any{"id": "e2", "target": m2, "body": map[string]string{"text": "second, better"}}))
	e3 := seqOf(t, e.post(t, y, g.ID, "edit", map[string]any{"id": "e3", "target": m2, "body": map[string]string{"text": "second, best"}}))

	// Reactions: any member, 1–32 bytes, on a message.
	for _, bad := range []map[string]any{
		{"id": "r1", "target": m1, "emoji": "", "on": true},
		{"id": "r1", "target": m1, "emoji": strings.Repeat("x", 33), "on": true},
		{"id": "r1", "target": m1, "emoji": "👍"},
		{"id": "r1", "target": 0, "emoji": "👍", "on": true},
	} {
		e.post(t, x, g.ID, "reactions", bad).fails(t, 400, "bad_request")
	}
	e.post(t, z, g.ID, "reactions", map[string]any{"id": "r1", "target": m1, "emoji": "👍", "on": true}).fails(t, 403, "forbidden")
	e.post(t, x, g.ID, "reactions", map[string]any{"id": "r1", "target": 999, "emoji": "👍", "on": true}).fails(t, 404, "not_found")
	e.post(t, x, g.ID, "reactions", map[string]any{"id": "r1", "target": e1, "emoji": "👍", "on": true}).fails(t, 400, "bad_request")
	seqOf(t, e.post(t, x, g.ID, "reactions", map[string]any{"id": "r1", "target": m1, "emoji": "👍", "on": true}))
	seqOf(t, e.post(t, y, g.ID, "reactions", map[string]any{"id": "r2", "target": m1, "emoji": "❤️", "on": true}))
	seqOf(t, e.post(t, y, g.ID, "reactions", map[string]any{"id": "r3", "target": m1, "emoji": "👍", "on": false})) // the projected r0 undone
	seqOf(t, e.post(t, x, g.ID, "reactions", map[string]any{"id": "r4", "target": m2, "emoji": strings.Repeat("a", 32), "on": true}))
	r5 := seqOf(t, e.post(t, x, g.ID, "reactions", map[string]any{"id": "r5", "target": m2, "emoji": "🎉", "on": true}))
	if again := seqOf(t, e.post(t, x, g.ID, "reactions", map[string]any{"id": "r5", "target": m2, "emoji": "🎉", "on": true})); again != r5 {
		t.Fatalf("resent reaction got seq %d, want %d", again, r5)
	}
	seqOf(t, e.post(t, x, g.ID, "reactions", map[string]any{"id": "r6", "target": m2, "emoji": "🎉", "on": false}))

	// Replies and mentions.
	e.do(t, "POST", "/v1/conversations/"+g.ID+"/messages", y.Token, map[string]any{"id": "q0", "body": 1, "reply_to": 999}).fails(t, 404, "not_found")
	e.do(t, "POST", "/v1/conversations/"+g.ID+"/messages", y.Token, map[string]any{"id": "q0", "body": 1, "reply_to": e1}).fails(t, 400, "bad_request")
	e.do(t, "POST", "/v1/conversations/"+g.ID+"/messages", y.Token, map[string]any{"id": "q0", "body": 1, "reply_to": -1}).fails(t, 400, "bad_request")
	e.do(t, "POST", "/v1/conversations/"+g.ID+"/messages", y.Token, map[string]any{"id": "q0", "body": 1, "mentions": []string{z.ID}}).fails(t, 400, "bad_request")
	many := make([]string, 51)
	for i := range many {
		many[i] = x.ID
	}
	e.do(t, "POST", "/v1/conversations/"+g.ID+"/messages", y.Token, map[string]any{"id": "q0", "body": 1, "mentions": many}).fails(t, 400, "bad_request")
	q1 := seqOf(t, e.do(t, "POST", "/v1/conversations/"+g.ID+"/messages", y.Token, map[string]any{"id": "q1", "body": map[string]string{"text": "@richx yes"}, "reply_to": m1, "mentions": []string{x.ID}}))

	check := func(when string) string {
		t.Helper()
		page, raw := e.richPage(t, x, g.ID)
		if m := page[m1]; string(m.Body) != `{"text":"hello edited world"}` || !m.Edited || m.EditedSeq != e1 ||
			len(m.Reactions) != 2 || m.Reactions["👍"] != 1 || m.Reactions["❤️"] != 1 {
			t.Fatalf("%s: message %d shows %+v", when, m1, m)
		}
		if m := page[m2]; string(m.Body) != `{"text":"second, best"}` || m.EditedSeq != e3 || len(m.Reactions) != 1 || m.Reactions[strings.Repeat("a", 32)] != 1 {
			t.Fatalf("%s: message %d shows %+v", when, m2, m)
		}
		if ed := page[e2]; ed.Kind != "edit" || ed.Target != m2 || string(ed.Body) != `{"text":"second, better"}` || ed.Edited {
			t.Fatalf("%s: edit %d shows %+v", when, e2, ed)
		}
		if r := page[r5]; r.Kind != "reaction" || r.Emoji != "🎉" || r.On == nil || !*r.On || r.Target != m2 {
			t.Fatalf("%s: reaction %d shows %+v", when, r5, r)
		}
		if q := page[q1]; q.ReplyTo != m1 || len(q.Mentions) != 1 || q.Mentions[0] != x.ID {
			t.Fatalf("%s: reply %d shows %+v", when, q1, q)
		}
		got := e.reactionsOf(t, y, g.ID, m1)
		if len(got) != 2 || fmt.Sprint(got["👍"]) != fmt.Sprint([]string{x.ID}) || fmt.Sprint(got["❤️"]) != fmt.Sprint([]string{y.ID}) {
			t.Fatalf("%s: reactions of %d: %v", when, m1, got)
		}
		return raw
	}
	lagging := check("projector lagging")
	e.do(t, "GET", fmt.Sprintf("/v1/conversations/%s/messages/%d/reactions", g.ID, e1), x.Token, nil).fails(t, 400, "bad_request")
	e.do(t, "GET", fmt.Sprintf("/v1/conversations/%s/messages/999/reactions", g.ID), x.Token, nil).fails(t, 404, "not_found")
	e.do(t, "GET", fmt.Sprintf("/v1/conversations/%s/messages/%d/reactions", g.ID, m1), z.Token, nil).fails(t, 403, "forbidden")
	e.do(t, "GET", fmt.Sprintf("/v1/conversations/%s/messages/x/reactions", g.ID), x.Token, nil).fails(t, 400, "bad_request")

	stop = runHistory(t, a)
	e.waitProjected(t, g.ID, q1)
	if caughtUp := check("projector caught up"); caughtUp != lagging {
		t.Fatalf("history differs once projected:\n%s\n%s", lagging, caughtUp)
	}

	// Recall erases every version; the recalled message takes no edit or
	// reaction (conflict), but may still be replied to.
	stop()
	e.post(t, x, g.ID, "recall", map[string]any{"id": "rc", "target": m2}).ok(t, http.StatusOK, nil)
	e.post(t, y, g.ID, "edit", map[string]any{"id": "e4", "target": m2, "body": 1}).fails(t, 409, "conflict")
	e.post(t, x, g.ID, "reactions", map[string]any{"id": "r7", "target": m2, "emoji": "👍", "on": true}).fails(t, 409, "conflict")
	seqOf(t, e.do(t, "POST", "/v1/conversations/"+g.ID+"/messages", y.Token, map[string]any{"id": "q2", "body": 1, "reply_to": m2}))
	erased := func(when string) string {
		t.Helper()
		page, raw := e.richPage(t, x, g.ID)
		if m := page[m2]; !m.Recalled || m.Body != nil || m.Edited || m.Reactions != nil {
			t.Fatalf("%s: recalled message shows %+v", when, m)
		}
		for _, s := range []int64{e2, e3} {
			if ed := page[s]; ed.Kind != "edit" || ed.Body != nil {
				t.Fatalf("%s: edit %d of a recalled message shows %+v", when, s, ed)
			}
		}
		if got := e.reactionsOf(t, x, g.ID, m2); len(got) != 0 {
			t.Fatalf("%s: recalled message has reactions %v", when, got)
		}
		return raw
	}
	lagging = erased("recall not projected")
	stop = runHistory(t, a)
	head := e.head(t, x, g.ID)
	e.waitProjected(t, g.ID, head)
	if projected := erased("recall projected"); projected != lagging {
		t.Fatalf("history differs once projected:\n%s\n%s", lagging, projected)
	}
	var leftover int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM events WHERE conv_id=$1 AND (convert_from(body, 'UTF8') LIKE '%second%' OR convert_from(cur_body, 'UTF8') LIKE '%second%')`, g.ID).Scan(&leftover); err != nil || leftover != 0 {
		t.Fatalf("a recalled message's versions stay in Postgres: %d rows, %v", leftover, err)
	}
	stop()

	n, err := history.Rebuild(context.Background(), postgres.NewHistoryWriter(a.Pool), a.NATS.JS, 3)
	if err != nil || n == 0 {
		t.Fatalf("rebuild: %d, %v", n, err)
	}
	if rebuilt := erased("rebuilt"); rebuilt != lagging {
		t.Fatalf("history differs after a rebuild:\n%s\n%s", lagging, rebuilt)
	}
	page, _ := e.richPage(t, x, g.ID)
	if m := page[m1]; !m.Edited || m.Reactions["👍"] != 1 || m.Reactions["❤️"] != 1 {
		t.Fatalf("rebuilt: message %d shows %+v", m1, m)
	}
}

func (e *env) mentions(t *testing.T, u user) map[string]int64 {
	t.Helper()
	var un struct {
		Mentions map[string]int64 `json:"mentions"`
	}
	r := e.do(t, "GET", "/v1/unread", u.Token, nil)
	r.ok(t, http.StatusOK, &un)
	if un.Mentions == nil {
		t.Fatalf("unread lacks mentions: %s", r.body)
	}
	return un.Mentions
}

func (e *env) waitMentions(t *testing.T, conv string, want map[user]int64) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, fmt.Sprintf("mention counts %v", want), func() bool {
		for u, n := range want {
			if got := e.mentions(t, u); got[conv] != n || (n == 0 && len(got) != 0) {
				return false
			}
		}
		return true
	})
}

// Mentions count per user and conversation like unread: not the sender's
// own, once per message, cleared by the read pointer, removed by a recall,
// and the same after a rebuild of the projection.
func TestMentionCounts(t *testing.T) {
	t.Parallel()
	cfg := testenv.Config(t)
	e, a := startRoles(t, cfg, wiring.API, wiring.Sequencer, wiring.Projector)
	x, y, z := e.register(t, "menx"), e.register(t, "meny"), e.register(t, "menz")
	g := e.createConv(t, x, "group", "mentions", y.ID, z.ID)
	sendM := func(u user, id string, mentions ...string) int64 {
		return seqOf(t, e.do(t, "POST", "/v1/conversations/"+g.ID+"/messages", u.Token, map[string]any{"id": id, "body": map[string]string{"text": "hey"}, "mentions": mentions}))
	}
	sendM(y, "m1", x.ID, z.ID, y.ID, x.ID) // 1: x and z (y is the sender; x once)
	sendM(y, "m2", x.ID)                   // 2: x
	m3 := sendM(x, "m3", z.ID)             // 3: z
	sendM(z, "m4")                         // 4: nobody
	e.waitMentions(t, g.ID, map[user]int64{x: 2, y: 0, z: 2})
	e.waitUnread(t, g.ID, map[user]int64{x: 3, y: 2, z: 3})

	e.do(t, "POST", "/v1/conversations/"+g.ID+"/read", x.Token, map[string]int64{"seq": 1}).ok(t, http.StatusNoContent, nil)
	e.post(t, x, g.ID, "recall", map[string]any{"id": "rc", "target": m3}).ok(t, http.StatusOK, nil)
	want := map[user]int64{x: 1, y: 0, z: 1}
	e.waitMentions(t, g.ID, want)

	store := unreadStore(t, cfg)
	if err := store.Clear(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := e.mentions(t, x); len(got) != 0 {
		t.Fatalf("after clearing Redis x still has mentions %v", got)
	}
	if _, err := unreadprojector.Rebuild(context.Background(), store, a.Pool, a.NATS.JS, 2); err != nil {
		t.Fatal(err)
	}
	e.waitMentions(t, g.ID, want)
	e.do(t, "POST", "/v1/conversations/"+g.ID+"/read", z.Token, map[string]int64{"seq": 5}).ok(t, http.StatusNoContent, nil)
	e.waitMentions(t, g.ID, map[user]int64{x: 1, y: 0, z: 0})
}

func unreadStore(t *testing.T, cfg config.Config) *unread.Store {
	t.Helper()
	ropt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(ropt)
	t.Cleanup(func() { rdb.Close() })
	return unread.New(rdb, cfg.RedisPrefix)
}

func (e *env) search(t *testing.T, u user, query string) []int64 {
	t.Helper()
	var out struct {
		Events []richEvent `json:"events"`
	}
	r := e.do(t, "GET", "/v1/search?"+query, u.Token, nil)
	r.ok(t, http.StatusOK, &out)
	keys(t, r.body, "events")
	if out.Events == nil {
		t.Fatalf("events must be a list: %s", r.body)
	}
	seqs := []int64{}
	for _, ev := range out.Events {
		if ev.Kind != "message" || ev.Recalled {
			t.Fatalf("search found %+v", ev)
		}
		seqs = append(seqs, ev.Seq)
	}
	return seqs
}

// Search: every word, whole words, any case, newest first, only where the
// user is a member and from their join on, edits by their latest body,
// recalls never; the same after a rebuild.
func TestSearch(t *testing.T) {
	t.Parallel()
	e, a := startRoles(t, testenv.Config(t), wiring.API, wiring.Sequencer, wiring.Projector)
	x, y, z := e.register(t, "srchx"), e.register(t, "srchy"), e.register(t, "srchz")
	g := e.createConv(t, x, "group", "search", y.ID)
	h := e.createConv(t, x, "direct", "", y.ID)
	text := func(s string) map[string]string { return map[string]string{"text": s} }
	e.send(t, x, g.ID, "s1", text("Hello brave World"))                                                                                 // 1
	e.send(t, y, g.ID, "s2", text("hello there, worldly one"))                                                                          // 2
	e.send(t, x, g.ID, "s3", text("hello world three"))                                                                                 // 3, edited below
	e.send(t, x, g.ID, "s4", text("HELLO world, recalled"))                                                                             // 4, recalled below
	e.send(t, x, g.ID, "s5", map[string]any{"html": "hello world"})                                                                     // 5: no text
	seqOf(t, e.post(t, x, g.ID, "edit", map[string]any{"id": "s3e", "target": 3, "body": text("Goodbye, then")}))                       // 6
	e.post(t, x, g.ID, "recall", map[string]any{"id": "s4r", "target": 4}).ok(t, http.StatusOK, nil)                                    // 7
	e.do(t, "POST", "/v1/conversations/"+g.ID+"/members", x.Token, map[string]string{"user_id": z.ID}).ok(t, http.StatusNoContent, nil) // 8
	after := e.send(t, y, g.ID, "s9", text("hello world, from after the join")).Seq                                                     // 9
	e.send(t, y, h.ID, "h1", text("hello world elsewhere"))
	e.waitProjected(t, g.ID, after)
	e.waitProjected(t, h.ID, 1)

	check := func(when string) {
		t.Helper()
		for _, tc := range []struct {
			u     user
			query string
			want  string
		}{
			{x, "q=elsewhere", "[1]"}, // in h: every conversation of x's
			{y, "q=hello+world+from", "[9]"},
			{x, "q=hello+world&conv=" + g.ID, "[9 1]"},
			{x, "q=WORLD+hello&conv=" + g.ID, "[9 1]"},
			{x, "q=world&limit=1&conv=" + g.ID, "[9]"},
			{x, "q=goodbye", "[3]"},
			{x, "q=three", "[]"},
			{x, "q=recalled", "[]"},
			{x, "q=worldly", "[2]"},
			{x, "q=wor", "[]"},
			{z, "q=hello+world", "[9]"},
			{z, "q=hello", "[9]"},
		} {
			if got := fmt.Sprint(e.search(t, tc.u, tc.query)); got != tc.want {
				t.Fatalf("%s: %s searching %q found %s, want %s", when, tc.u.Name, tc.query, got, tc.want)
			}
		}
		var out struct {
			Events []richEvent `json:"events"`
		}
		e.do(t, "GET", "/v1/search?q=goodbye", x.Token, nil).ok(t, http.StatusOK, &out)
		if m := out.Events[0]; !m.Edited || m.EditedSeq != 6 || string(m.Body) != `{"text":"Goodbye, then"}` {
			t.Fatalf("%s: an edited message found as %+v", when, m)
		}
	}
	check("projected")
	e.do(t, "GET", "/v1/search?q=", x.Token, nil).fails(t, 400, "bad_request")
	e.do(t, "GET", "/v1/search?q=+", x.Token, nil).fails(t, 400, "bad_request")
	e.do(t, "GET", "/v1/search", x.Token, nil).fails(t, 400, "bad_request")
	e.do(t, "GET", "/v1/search?q=hi&limit=x", x.Token, nil).fails(t, 400, "bad_request")
	e.do(t, "GET", "/v1/search?q=hi&conv=nope", x.Token, nil).fails(t, 404, "not_found")
	e.do(t, "GET", "/v1/search?q=hi&conv="+h.ID, z.Token, nil).fails(t, 403, "forbidden")
	e.do(t, "GET", "/v1/search?q=hi", "", nil).fails(t, 401, "unauthorized")
	for i := 0; i < 105; i++ {
		e.send(t, y, h.ID, fmt.Sprintf("many%d", i), text("many"))
	}
	e.waitProjected(t, h.ID, 106)
	if n := len(e.search(t, x, "q=many")); n != 20 {
		t.Fatalf("default limit: %d found", n)
	}
	if n := len(e.search(t, x, "q=many&limit=500")); n != 100 {
		t.Fatalf("limit 500: %d found, want at most 100", n)
	}

	if _, err := history.Rebuild(context.Background(), postgres.NewHistoryWriter(a.Pool), a.NATS.JS, 4); err != nil {
		t.Fatal(err)
	}
	check("rebuilt")
}
