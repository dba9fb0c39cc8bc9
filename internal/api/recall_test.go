package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/internal/wiring"
)

// Invariant 4 for recalls: once the owner's recall is answered, the other
// member's history page shows the message recalled, even though the
// history projector, stopped after writing the message, never writes the
// recall.
func TestRecallReadYourWritesWithProjectorStopped(t *testing.T) {
	t.Parallel()
	cfg := testenv.Config(t)
	e, _ := startRoles(t, cfg, wiring.API, wiring.Sequencer)
	proj, err := wiring.Start(context.Background(), cfg, testenv.Logger(t), wiring.Projector)
	if err != nil {
		t.Fatal(err)
	}
	a, b := e.register(t, "ryw-a"), e.register(t, "ryw-b")
	conv := e.createConv(t, a, "direct", "", b.ID).ID
	for _, id := range []string{"m1", "m2", "m3"} {
		e.send(t, a, conv, id, map[string]string{"text": id})
	}
	testenv.Eventually(t, 30*time.Second, "the history projector to write the messages", func() bool {
		var n int64
		_ = e.pool.QueryRow(context.Background(), "SELECT coalesce((SELECT last_seq FROM heads WHERE conv_id=$1), 0)", conv).Scan(&n)
		return n == 3
	})
	if err := proj.Stop(); err != nil {
		t.Fatal(err)
	}
	var got struct{ Seq int64 }
	e.do(t, "POST", "/v1/conversations/"+conv+"/recall", a.Token, map[string]any{"id": "r1", "target": 2}).ok(t, http.StatusOK, &got)
	if got.Seq != 4 {
		t.Fatalf("recall seq %d, want 4", got.Seq)
	}
	p := e.page(t, b, conv, "")
	if len(p.Events) != 4 {
		t.Fatalf("page %+v, want 4 events", p.Events)
	}
	if ev := p.Events[1]; !ev.Recalled || ev.Body != nil {
		t.Fatalf("bob's page right after the recall's answer shows seq 2 as %+v (body %s); want recalled, no body", ev, ev.Body)
	}
	if ev := p.Events[0]; ev.Recalled || ev.Body == nil {
		t.Fatalf("seq 1 shows as %+v; want it untouched", ev)
	}
}
