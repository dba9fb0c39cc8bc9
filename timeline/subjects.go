package timeline

import (
	"fmt"
	"strconv"

	"github.com/seqchat/seqchat/events"
)

// The NATS subjects and headers of the system, in one place: the streams'
// subjects, where commands are answered, and the core NATS hops from the
// fanout projector to the edges.

// Subjects of the streams.
const (
	CmdSubjects      = "cmd.>"
	TimelineSubjects = "tl.>"
	timelinePrefix   = "tl."
)

// CmdSubject is where commands for conv wait in CMDS.
func CmdSubject(partitions int, conv string) string {
	// One allocation: it is made for every CMDS message.
	return "cmd." + strconv.Itoa(events.Partition(conv, partitions)) + "." + conv
}

// CmdPartitionFilter selects one partition's commands.
func CmdPartitionFilter(p int) string { return fmt.Sprintf("cmd.%d.>", p) }

// TimelineSubject is conv's subject in TIMELINE.
func TimelineSubject(conv string) string { return timelinePrefix + conv }

// ReplyBatchToken is the last token of the subject on which the sequencer
// answers several commands at once. A command's reply subject (HeaderReply)
// is "<prefix>.<token>"; the sequencer may answer several commands that
// share a prefix with one message on "<prefix>.<ReplyBatchToken>" holding
// their []events.Answer.
const ReplyBatchToken = "_b"

// DeliverSubject is the core NATS subject an edge listens on.
func DeliverSubject(edgeID string) string { return "deliver." + edgeID }

// AllSubject is the core NATS subject every edge listens on for frames
// meant for every live connection (a push to everyone): one publish reaches
// all edges, and each edge fans out to its own connections.
const AllSubject = "push.all"

// ConnectedSubject is where an edge tells the running fanout projector that
// a user has a new connection on it, before it lets the connection sync:
// "<user> <edge>". The fanout answers once it will route the user's events
// there, so every event appended after the connection's sync reaches it
// live (fanout.AnnounceConnect waits for that answer).
const ConnectedSubject = "chat.fanout.connected"

// Headers carried on NATS messages.
const (
	// HeaderReply names the subject the sequencer answers a command on.
	HeaderReply = "Chat-Reply"
	// HeaderOrigin names the connection a command came from ("<edge>/<conn>"),
	// so fanout can skip it: that connection gets an ack instead.
	HeaderOrigin = "Chat-Origin"
	// HeaderBatch marks a CMDS message that carries several commands for
	// one partition, each connection's in the order it sent them: its data
	// is a JSON array of events.Queued and it has no HeaderReply. A command
	// from another connection than HeaderOrigin names carries its own.
	HeaderBatch = "Chat-Batch"
	// HeaderTo carries the recipients of a delivery to an edge: user ids
	// separated by spaces. The event's origin connection travels in
	// HeaderOrigin.
	HeaderTo = "Chat-To"
	// HeaderKind marks a delivery that is not a TIMELINE event: its data is
	// a complete frame (a receipt, a presence change) that the edge writes
	// as is to the connections of the users in HeaderTo, except the one
	// named in HeaderOrigin. Such frames have no seq and take no part in a
	// conversation's order.
	HeaderKind = "Chat-Kind"
)

// KindFrame is HeaderKind's value for a ready-made frame.
const KindFrame = "frame"
