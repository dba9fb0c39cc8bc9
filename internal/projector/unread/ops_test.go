package unread_test

import (
	"context"
	"errors"
	"testing"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/internal/projector/unread"
	"github.com/seqchat/seqchat/timeline"
)

// known answers only for the conversations it has; others are not found,
// except "down", whose lookup fails as a database outage would.
type known map[string]*events.Conv

func (k known) Get(_ context.Context, conv string) (*events.Conv, error) {
	if conv == "down" {
		return nil, events.WrapError(events.CodeUnavailable, errors.New("connection refused"), "members unavailable")
	}
	if cv, ok := k[conv]; ok {
		return cv, nil
	}
	return nil, events.NoConversation(conv)
}
func (known) Invalidate(string) {}

// An event of a conversation Postgres does not know makes no op, and the
// events around it are projected; a lookup that fails otherwise fails the
// batch, to be retried.
func TestOpsSkipUnknownConversations(t *testing.T) {
	t.Parallel()
	m := known{"c1": {Kind: "direct", Members: map[string]string{"a": "member", "b": "member"}, Joined: map[string]int64{"a": 1, "b": 1}}}
	msg := func(conv string, seq int64) timeline.Stored {
		return timeline.Stored{Event: events.Event{Conv: conv, Seq: seq, Kind: events.KindMessage, From: "a", ID: "m", Body: []byte(`{"text":"x"}`)}}
	}
	recall := timeline.Stored{Event: events.Event{Conv: "gone", Seq: 2, Kind: events.KindRecall, From: "a", Target: 1}}
	ops, err := unread.Ops(context.Background(), m, []timeline.Stored{msg("c1", 1), msg("gone", 1), recall, msg("c1", 2)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 2 {
		t.Fatalf("%d ops, want 2 (b's unread for c1 seqs 1 and 2): %+v", len(ops), ops)
	}
	if _, err := unread.Ops(context.Background(), m, []timeline.Stored{msg("down", 1)}); events.CodeOf(err) != events.CodeUnavailable {
		t.Fatalf("a failing lookup: %v, want unavailable", err)
	}
}
