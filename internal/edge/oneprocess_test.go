package edge_test

import "testing"

// TestOneProcess runs the tests of delivery, replay and the rules on a
// socket again with the first process in the one-process mode (an
// embedded JetStream: answers, fanout and the history and unread
// projections take the sequencer's events in memory instead of through
// NATS; startWith), the mode `make run` and most users start with. The
// rest of this package runs against a NATS server of its own, as the
// split deployment does.
func TestOneProcess(t *testing.T) {
	for _, tc := range []struct {
		name string
		test func(*testing.T)
	}{
		{"LiveDeliveryInOrder", TestLiveDeliveryInOrder},
		{"Resend", TestResend},
		{"OfflineReplay", TestOfflineReplay},
		{"SyncDuringTraffic", TestSyncDuringTraffic},
		{"EdgeStopped", TestEdgeStopped},
		{"BadInput", TestBadInput},
		{"MembershipAndPresence", TestMembershipAndPresence},
		{"FirstSyncWaitReleases", TestFirstSyncWaitReleases},
		{"ReceiptFrames", TestReceiptFrames},
		{"EditAndReactFrames", TestEditAndReactFrames},
		{"RecallOfRecalledNeedsPermission", TestRecallOfRecalledNeedsPermission},
		{"LeavingMemberRefusedOnSocket", TestLeavingMemberRefusedOnSocket},
		{"Typing", TestTyping},
		{"PresenceFrames", TestPresenceFrames},
		{"LogoutEverywhere", TestLogoutEverywhere},
	} {
		t.Run(tc.name, tc.test)
	}
}
