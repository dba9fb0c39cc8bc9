package api_test

import "testing"

// TestOneProcess runs the tests of messages, paging, read pointers and
// unread counts, recall, rich messages and search again with the system
// in the one-process mode (startSystem): there the history and unread
// projections take the sequencer's events in memory, and history reads
// must still return every acked event (read-your-writes). The rest of this
// package runs against a NATS server of its own, as the split deployment
// does.
func TestOneProcess(t *testing.T) {
	for _, tc := range []struct {
		name string
		test func(*testing.T)
	}{
		{"Conversations", TestConversations},
		{"Membership", TestMembership},
		{"Messages", TestMessages},
		{"Paging", TestPaging},
		{"ReadAndUnread", TestReadAndUnread},
		{"UnreadInAGroup", TestUnreadInAGroup},
		{"Recall", TestRecall},
		{"RichMessages", TestRichMessages},
		{"MentionCounts", TestMentionCounts},
		{"Search", TestSearch},
	} {
		t.Run(tc.name, tc.test)
	}
}
