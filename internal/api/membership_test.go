package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/internal/wiring"
)

// A join or leave whose sequencing fails (no sequencer running) is finished,
// exactly once, by the retry: nobody is left a member without a
// member_joined event, or gone without a member_left.
func TestMembershipChangeRetried(t *testing.T) {
	t.Parallel()
	cfg := testenv.Config(t)
	cfg.CommandTimeout = 500 * time.Millisecond
	e, _ := startRoles(t, cfg, wiring.API, wiring.Projector) // no sequencer yet
	owner, joiner := e.register(t, "mowner"), e.register(t, "mjoiner")
	g := e.createConv(t, owner, "group", "retries")
	add := func() resp {
		return e.do(t, "POST", "/v1/conversations/"+g.ID+"/members", owner.Token, map[string]string{"user_id": joiner.ID})
	}
	add().fails(t, http.StatusServiceUnavailable, "unavailable")
	add().fails(t, http.StatusServiceUnavailable, "unavailable")

	cfg2 := cfg
	cfg2.HTTPAddr, cfg2.InstanceID = "127.0.0.1:0", "sequencer-late"
	startRoles(t, cfg2, wiring.Sequencer)
	// From here on commands are sequenced: an api with the usual timeout
	// serves the rest, so that a loaded machine does not turn a slow
	// answer into a 503 (the first api's 500 ms only made the failures
	// above quick).
	cfg3 := cfg
	cfg3.HTTPAddr, cfg3.InstanceID, cfg3.CommandTimeout = "127.0.0.1:0", "api-2", 10*time.Second
	e, _ = startRoles(t, cfg3, wiring.API)
	deadline := time.Now().Add(20 * time.Second)
	for r := add(); r.status != http.StatusNoContent; r = add() {
		if time.Now().After(deadline) {
			t.Fatalf("add member never succeeded: %d %s", r.status, r.body)
		}
	}
	add().ok(t, http.StatusNoContent, nil) // now simply a member
	p := e.page(t, owner, g.ID, "")
	if len(p.Events) != 1 || p.Events[0].Kind != "member_joined" || p.Events[0].User != joiner.ID {
		t.Fatalf("history after retried joins = %+v, want one member_joined", p.Events)
	}
	// The joiner sees history from their join on.
	if jp := e.page(t, joiner, g.ID, ""); len(jp.Events) != 1 {
		t.Fatalf("joiner's history = %+v", jp.Events)
	}
	e.send(t, joiner, g.ID, "hello", "hi")

	// A leave that is marked but not yet sequenced stops reading at once,
	// and a retry finishes it once.
	var n int
	e.pool.QueryRow(context.Background(), "SELECT count(*) FROM members WHERE conv_id=$1", g.ID).Scan(&n)
	e.do(t, "DELETE", "/v1/conversations/"+g.ID+"/members/"+joiner.ID, owner.Token, nil).ok(t, http.StatusNoContent, nil)
	e.do(t, "DELETE", "/v1/conversations/"+g.ID+"/members/"+joiner.ID, owner.Token, nil).fails(t, http.StatusNotFound, "not_found")
	e.do(t, "GET", "/v1/conversations/"+g.ID+"/messages", joiner.Token, nil).fails(t, http.StatusForbidden, "forbidden")
	p = e.page(t, owner, g.ID, "")
	kinds := []string{}
	for _, ev := range p.Events {
		kinds = append(kinds, ev.Kind)
	}
	if len(kinds) != 3 || kinds[0] != "member_joined" || kinds[1] != "message" || kinds[2] != "member_left" {
		t.Fatalf("history = %v, want member_joined, message, member_left", kinds)
	}
}
