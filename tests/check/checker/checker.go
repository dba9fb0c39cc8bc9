// Package checker verifies, from the outside, what a run of the chat system
// did against the invariants of docs/architecture.md: it is fed a history of what
// clients sent and received (JSON lines, one Record each) and the final state
// of the stores (State: TIMELINE, the Postgres history and members, the
// Redis unread sets), and it reports every violation it finds, as counts per
// kind with a few examples.
//
// The checking is pure (Check); loading the state from running stores is in
// load.go (LoadState), so doctored histories and states can be checked
// without any server.
//
// # The history
//
// One JSON object per line. Every record has "t" (its type), "client" (the
// user id of the client), and, except where noted, "conn" (an id naming one
// connection's life: a reconnect is a new conn) and "at" (Unix milliseconds).
// Records of one connection must appear in the order they happened; records
// of different connections may interleave freely.
//
//	{"t":"connect","client":"u1","conn":"u1/3","edge":"127.0.0.1:4001","at":…}
//	{"t":"disconnect","client":"u1","conn":"u1/3","at":…}
//	{"t":"sync","client":"u1","conn":"u1/3","cursors":{"c1":17},"at":…}      the sync frame was sent
//	{"t":"synced","client":"u1","conn":"u1/3","heads":{"c1":20},"at":…}      its answer arrived
//	{"t":"send","client":"u1","conn":"u1/3","conv":"c1","id":"m42","resend":true,"at":…}
//	{"t":"ack","client":"u1","conn":"u1/3","conv":"c1","id":"m42","seq":18,"at":…}
//	{"t":"event","client":"u1","conn":"u1/3","conv":"c1","seq":19,"id":"m7","from":"u2","kind":"message","at":…}
//	{"t":"error","client":"u1","conn":"u1/3","id":"m43","code":"unavailable","at":…}
//
// "send" is a send frame written to the socket ("resend" marks a repeat of an
// id the client sent before, on this or an earlier connection); "ack" is an
// ack frame carrying a seq; "event" is an event frame (live or replayed by a
// sync). Unknown types are ignored, so a harness may log more.
//
// # What is checked
//
//   - lost_acked: an acked command whose event (by sender and id) is not in
//     TIMELINE (invariant 1).
//   - duplicate_message: a (sender, id) that appears more than once in
//     TIMELINE (invariant 3).
//   - ack_seq_mismatch: an ack whose seq (or conversation) differs from the
//     event's, or two acks of one command with different seqs (invariant 3).
//   - seq_gap, seq_duplicate: per conversation, TIMELINE's seqs are not
//     exactly 1..N, or are stored out of order (invariant 2).
//   - sender_order: two commands one connection sent first, in one
//     conversation, whose seqs are in the opposite order (invariant 2).
//   - delivery_gap, delivery_out_of_order, delivery_duplicate: on one
//     connection, from the answer to its first sync on, a conversation's
//     arrivals (events and acks) are not cursor+1, cursor+2, …: a seq
//     skipped, a skipped seq arriving late, or a seq arriving twice. Between
//     a sync and its synced answer anything may arrive (the replay, and live
//     events the edge sent before it read the sync), but every seq from the
//     sync's cursor+1 to the answer's head must; the answer sets the cursor
//     to that head. An ack of a seq at or below the cursor is the answer to
//     a resend (not a duplicate) when the command was sent more than once
//     and the client had learnt its seq before (invariant 5).
//   - delivery_mismatch: an event frame that differs from TIMELINE's event
//     at that seq (id, sender or kind).
//   - history_mismatch: a Postgres history row missing, extra or different
//     from what a replay of TIMELINE gives (a recall erases its target's
//     body and marks it recalled) (invariant 6).
//   - unread_mismatch: a Redis unread set that differs from a replay of
//     TIMELINE: every message's seq for each member (joined at or before it)
//     but its sender, minus what the member's read pointer covers, minus
//     recalled seqs (invariant 6).
package checker

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
)

// Record is one line of a history.
type Record struct {
	T       string           `json:"t"`
	Client  string           `json:"client"`
	Conn    string           `json:"conn,omitempty"`
	Edge    string           `json:"edge,omitempty"`
	Conv    string           `json:"conv,omitempty"`
	ID      string           `json:"id,omitempty"`
	Seq     int64            `json:"seq,omitempty"`
	From    string           `json:"from,omitempty"`
	Kind    string           `json:"kind,omitempty"`
	Resend  bool             `json:"resend,omitempty"`
	Cursors map[string]int64 `json:"cursors,omitempty"`
	Heads   map[string]int64 `json:"heads,omitempty"`
	Code    string           `json:"code,omitempty"`
	At      int64            `json:"at,omitempty"`
}

// Record types.
const (
	TConnect    = "connect"
	TDisconnect = "disconnect"
	TSync       = "sync"
	TSynced     = "synced"
	TSend       = "send"
	TAck        = "ack"
	TEvent      = "event"
	TError      = "error"
)

// ReadHistory parses a JSON-lines history.
func ReadHistory(r io.Reader) ([]Record, error) {
	var out []Record
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil {
			return nil, fmt.Errorf("history line %d: %w", n, err)
		}
		out = append(out, rec)
	}
	return out, sc.Err()
}

// Event is one event of TIMELINE, as docs/protocol.md encodes it.
type Event struct {
	Conv      string          `json:"conv"`
	Seq       int64           `json:"seq"`
	Kind      string          `json:"kind"`
	ID        string          `json:"id"`
	From      string          `json:"from"`
	TS        int64           `json:"ts"`
	Body      json.RawMessage `json:"body,omitempty"`
	Target    int64           `json:"target,omitempty"`
	User      string          `json:"user,omitempty"`
	StreamSeq uint64          `json:"-"`
}

// Row is one row of the Postgres history projection.
type Row struct {
	Conv     string
	Seq      int64
	Kind     string
	CmdID    string
	Sender   string
	Body     []byte // nil for none
	Target   int64
	Member   string
	Recalled bool
}

// Member is one row of the members table.
type Member struct {
	Conv      string
	User      string
	JoinedSeq int64
	ReadSeq   int64
}

// State is the final state of the stores.
type State struct {
	// Timeline is every event of TIMELINE in stream order.
	Timeline []Event
	// History, when HistoryLoaded, is the Postgres history projection.
	History       []Row
	HistoryLoaded bool
	// Members is the membership (with read pointers) from Postgres.
	Members []Member
	// Unread, when UnreadLoaded, is user → conversation → the seqs in the
	// Redis unread set.
	Unread       map[string]map[string][]int64
	UnreadLoaded bool
}

// Options narrow what is checked.
type Options struct {
	// Convs, when not nil, restricts the checks of the stores (seqs,
	// projections) to these conversations. Acks are checked whatever it says.
	Convs map[string]bool
}

// Violation kinds.
const (
	LostAcked           = "lost_acked"
	DuplicateMessage    = "duplicate_message"
	AckSeqMismatch      = "ack_seq_mismatch"
	SeqGap              = "seq_gap"
	SeqDuplicate        = "seq_duplicate"
	SenderOrder         = "sender_order"
	DeliveryGap         = "delivery_gap"
	DeliveryOutOfOrder  = "delivery_out_of_order"
	DeliveryDuplicate   = "delivery_duplicate"
	DeliveryMismatch    = "delivery_mismatch"
	HistoryMismatch     = "history_mismatch"
	UnreadMismatch      = "unread_mismatch"
	maxExamplesPerKind  = 5
	maxDetailSeqsInDiff = 8
)

// Kinds lists every violation kind, in report order.
var Kinds = []string{
	LostAcked, DuplicateMessage, AckSeqMismatch, SeqGap, SeqDuplicate, SenderOrder,
	DeliveryGap, DeliveryOutOfOrder, DeliveryDuplicate, DeliveryMismatch,
	HistoryMismatch, UnreadMismatch,
}

// Stats are what the history and state hold, for the report.
type Stats struct {
	Clients, Connections          int
	Sends, Resends                int
	Commands, Acked, Unacked      int // distinct (client, id) sent; acked; neither acked nor seen as an event
	RepeatAcks                    int // acks answering a resend of a seq already arrived
	Events                        int // event frames received
	Errors                        map[string]int
	TimelineEvents, Conversations int
	HistoryRows, UnreadSets       int
}

// Report is the outcome of a check.
type Report struct {
	Counts   map[string]int
	Examples map[string][]string
	Stats    Stats
}

// OK reports whether no violation was found.
func (r *Report) OK() bool {
	for _, n := range r.Counts {
		if n > 0 {
			return false
		}
	}
	return true
}

// Total is the number of violations of the given kinds (all when none given).
func (r *Report) Total(kinds ...string) int {
	if len(kinds) == 0 {
		kinds = Kinds
	}
	n := 0
	for _, k := range kinds {
		n += r.Counts[k]
	}
	return n
}

// Summary is the counts on one line.
func (r *Report) Summary() string {
	var b strings.Builder
	for i, k := range Kinds {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%d", k, r.Counts[k])
	}
	return b.String()
}

// String is the whole report, with examples.
func (r *Report) String() string {
	var b strings.Builder
	s := r.Stats
	fmt.Fprintf(&b, "history: %d clients, %d connections, %d sends (%d resends), %d commands, %d acked, %d unacked, %d repeat acks, %d events received",
		s.Clients, s.Connections, s.Sends, s.Resends, s.Commands, s.Acked, s.Unacked, s.RepeatAcks, s.Events)
	if len(s.Errors) > 0 {
		codes := slices.Sorted(maps.Keys(s.Errors))
		b.WriteString(", errors:")
		for _, c := range codes {
			fmt.Fprintf(&b, " %s=%d", c, s.Errors[c])
		}
	}
	fmt.Fprintf(&b, "\nstate: %d timeline events in %d conversations, %d history rows, %d unread sets\n",
		s.TimelineEvents, s.Conversations, s.HistoryRows, s.UnreadSets)
	for _, k := range Kinds {
		fmt.Fprintf(&b, "%-22s %d\n", k, r.Counts[k])
		for _, ex := range r.Examples[k] {
			fmt.Fprintf(&b, "    %s\n", ex)
		}
	}
	if r.OK() {
		b.WriteString("OK: no violation\n")
	} else {
		fmt.Fprintf(&b, "FAIL: %d violations\n", r.Total())
	}
	return b.String()
}

func (r *Report) add(kind, format string, args ...any) {
	r.Counts[kind]++
	if len(r.Examples[kind]) < maxExamplesPerKind {
		r.Examples[kind] = append(r.Examples[kind], fmt.Sprintf(format, args...))
	}
}

type key struct{ client, id string }

type convSeq struct {
	conv string
	seq  int64
}

// Check checks a history against a final state.
func Check(history []Record, st State, opt Options) *Report {
	r := &Report{Counts: map[string]int{}, Examples: map[string][]string{}}
	for _, k := range Kinds {
		r.Counts[k] = 0
	}
	r.Stats.Errors = map[string]int{}
	inScope := func(conv string) bool { return opt.Convs == nil || opt.Convs[conv] }

	// Index TIMELINE.
	byKey := map[key][]Event{}
	bySeq := map[convSeq]Event{}
	perConv := map[string][]int64{}
	for _, e := range st.Timeline {
		byKey[key{e.From, e.ID}] = append(byKey[key{e.From, e.ID}], e)
		if _, dup := bySeq[convSeq{e.Conv, e.Seq}]; !dup {
			bySeq[convSeq{e.Conv, e.Seq}] = e
		}
		if inScope(e.Conv) {
			r.Stats.TimelineEvents++
			perConv[e.Conv] = append(perConv[e.Conv], e.Seq)
		}
	}
	r.Stats.Conversations = len(perConv)

	// Invariant 2 in TIMELINE: seqs 1..N, stored in order.
	for _, conv := range slices.Sorted(maps.Keys(perConv)) {
		seqs := perConv[conv]
		var prev int64
		for _, s := range seqs {
			if s <= prev {
				if s == prev {
					continue // counted as a duplicate below
				}
				r.add(SeqGap, "conv %s: seq %d stored after seq %d", conv, s, prev)
			}
			prev = max(prev, s)
		}
		sorted := slices.Clone(seqs)
		slices.Sort(sorted)
		want := int64(1)
		for i, s := range sorted {
			if i > 0 && s == sorted[i-1] {
				r.add(SeqDuplicate, "conv %s: seq %d stored more than once", conv, s)
				continue
			}
			if s != want {
				r.add(SeqGap, "conv %s: seqs %d..%d missing", conv, want, s-1)
			}
			want = s + 1
		}
	}
	for k, evs := range byKey {
		if len(evs) > 1 && inScope(evs[0].Conv) {
			var seqs []string
			for _, e := range evs {
				seqs = append(seqs, fmt.Sprintf("%s#%d", e.Conv, e.Seq))
			}
			r.add(DuplicateMessage, "command %s of %s appended %d times: %s", k.id, k.client, len(evs), strings.Join(seqs, ", "))
		}
	}

	// The history: acks, sender order, per-connection delivery.
	clients := map[string]bool{}
	commands := map[key]bool{}
	sends := map[key]int{}
	acked := map[key]Record{}
	seenAsEvent := map[key]bool{}
	conns := map[string]*connState{}
	var connOrder []string
	for _, rec := range history {
		if rec.Client != "" {
			clients[rec.Client] = true
		}
		cs := conns[rec.Conn]
		if cs == nil && rec.Conn != "" {
			cs = &connState{client: rec.Client, last: map[string]int64{}, base: map[string]int64{},
				arrived: map[string]map[int64]string{}, syncing: map[string]int64{}, window: map[string]map[int64]bool{}}
			conns[rec.Conn] = cs
			connOrder = append(connOrder, rec.Conn)
		}
		switch rec.T {
		case TSend:
			r.Stats.Sends++
			k := key{rec.Client, rec.ID}
			sends[k]++
			if rec.Resend || commands[k] {
				r.Stats.Resends++
			}
			if !commands[k] {
				commands[k] = true
				if cs != nil {
					cs.firstSent = append(cs.firstSent, k)
				}
			}
		case TAck:
			k := key{rec.Client, rec.ID}
			_, known := acked[k]
			// A repeat ack answers a resend of a command whose seq the
			// client had learnt already; one sent once is acked once.
			known = (known || seenAsEvent[k]) && sends[k] > 1
			if cs != nil {
				cs.arrive(r, rec, true, known)
			}
			if prev, ok := acked[k]; ok {
				if prev.Seq != rec.Seq {
					r.add(AckSeqMismatch, "command %s of %s acked with seq %d, earlier with %d", rec.ID, rec.Client, rec.Seq, prev.Seq)
				}
			} else {
				acked[k] = rec
			}
		case TEvent:
			r.Stats.Events++
			if rec.From == rec.Client {
				seenAsEvent[key{rec.Client, rec.ID}] = true
			}
			if e, ok := bySeq[convSeq{rec.Conv, rec.Seq}]; ok {
				if e.ID != rec.ID || e.From != rec.From || (rec.Kind != "" && e.Kind != rec.Kind) {
					r.add(DeliveryMismatch, "conn %s got %s#%d as %s/%s (%s), TIMELINE has %s/%s (%s)",
						rec.Conn, rec.Conv, rec.Seq, rec.From, rec.ID, rec.Kind, e.From, e.ID, e.Kind)
				}
			} else if inScope(rec.Conv) {
				r.add(DeliveryMismatch, "conn %s got %s#%d (%s/%s), which TIMELINE does not have", rec.Conn, rec.Conv, rec.Seq, rec.From, rec.ID)
			}
			if cs != nil {
				cs.arrive(r, rec, false, false)
			}
		case TSync:
			if cs != nil {
				for conv, c := range rec.Cursors {
					cs.syncing[conv] = c
					cs.window[conv] = map[int64]bool{}
				}
			}
		case TSynced:
			if cs != nil {
				cs.synced = true
				for conv, h := range rec.Heads {
					c, ok := cs.syncing[conv]
					if !ok {
						continue
					}
					var missing []int64
					for s := c + 1; s <= h; s++ {
						if !cs.window[conv][s] {
							missing = append(missing, s)
						}
					}
					if len(missing) > 0 {
						r.add(DeliveryGap, "conn %s: synced %s from %d to head %d without replaying %v", rec.Conn, conv, c, h, head(missing))
					}
					cs.last[conv], cs.base[conv] = max(c, h), max(c, h)
					cs.arrived[conv] = map[int64]string{}
					delete(cs.syncing, conv)
					delete(cs.window, conv)
				}
			}
		case TError:
			r.Stats.Errors[rec.Code]++
		}
	}
	r.Stats.Clients = len(clients)
	r.Stats.Connections = len(conns)
	r.Stats.Commands = len(commands)
	r.Stats.Acked = len(acked)
	for _, cs := range conns {
		r.Stats.RepeatAcks += cs.repeatAcks
	}
	for k := range commands {
		if _, ok := acked[k]; !ok && !seenAsEvent[k] {
			r.Stats.Unacked++
		}
	}

	// Invariants 1 and 3: every ack's event exists once, at the acked seq.
	for _, k := range slices.SortedFunc(maps.Keys(acked), func(a, b key) int {
		return strings.Compare(a.client+"\x00"+a.id, b.client+"\x00"+b.id)
	}) {
		a := acked[k]
		evs := byKey[k]
		if len(evs) == 0 {
			r.add(LostAcked, "command %s of %s acked with %s#%d, not in TIMELINE", k.id, k.client, a.Conv, a.Seq)
			continue
		}
		if evs[0].Seq != a.Seq || evs[0].Conv != a.Conv {
			r.add(AckSeqMismatch, "command %s of %s acked with %s#%d, TIMELINE has it at %s#%d", k.id, k.client, a.Conv, a.Seq, evs[0].Conv, evs[0].Seq)
		}
	}

	// Invariant 2: one connection's commands keep their order.
	for _, c := range connOrder {
		cs := conns[c]
		last := map[string]Event{}
		for _, k := range cs.firstSent {
			evs := byKey[k]
			if len(evs) == 0 {
				continue
			}
			e := evs[0]
			if p, ok := last[e.Conv]; ok && e.Seq < p.Seq {
				r.add(SenderOrder, "conn %s sent %s before %s, sequenced %s#%d after #%d", c, p.ID, e.ID, e.Conv, p.Seq, e.Seq)
			}
			if p, ok := last[e.Conv]; !ok || e.Seq > p.Seq {
				last[e.Conv] = e
			}
		}
	}

	checkHistory(r, st, inScope)
	checkUnread(r, st, inScope)
	return r
}

// connState follows one connection's arrivals.
type connState struct {
	client     string
	synced     bool                        // the answer to its first sync arrived
	syncing    map[string]int64            // conv → cursor of a sync not answered yet
	window     map[string]map[int64]bool   // conv → seqs arrived while it syncs
	last       map[string]int64            // conv → last seq arrived in order
	base       map[string]int64            // conv → the cursor the order started from (sync cursor or first arrival - 1)
	arrived    map[string]map[int64]string // conv → seq → "<from>/<id>" of what arrived since the cursor was set
	firstSent  []key                       // commands first sent (anywhere) on this connection, in order
	repeatAcks int
}

// arrive checks one arrival (an event, or an ack when isAck). known says
// whether the client had already learnt this command's seq before (an ack
// of it, or its own event): an ack of a seq at or below the cursor is then
// the answer to a resend, which every command gets.
func (cs *connState) arrive(r *Report, rec Record, isAck, known bool) {
	conv := rec.Conv
	if w, ok := cs.window[conv]; ok {
		// Syncing: the replay, and anything sent before the edge read the
		// sync, may repeat; by the answer it must cover cursor+1..head.
		w[rec.Seq] = true
		return
	}
	if !cs.synced {
		return // ordering holds from the answer to the first sync on
	}
	who := rec.From + "/" + rec.ID
	if isAck {
		who = rec.Client + "/" + rec.ID
	}
	arr := cs.arrived[conv]
	if arr == nil {
		arr = map[int64]string{}
		cs.arrived[conv] = arr
	}
	last, ok := cs.last[conv]
	if !ok {
		// A conversation the sync did not name: its first arrival is the baseline.
		cs.last[conv], cs.base[conv] = rec.Seq, rec.Seq-1
		arr[rec.Seq] = who
		return
	}
	switch {
	case rec.Seq == last+1:
		cs.last[conv] = rec.Seq
		arr[rec.Seq] = who
	case rec.Seq > last+1:
		r.add(DeliveryGap, "conn %s: %s#%d arrived after #%d (skipped %d..%d)", rec.Conn, conv, rec.Seq, last, last+1, rec.Seq-1)
		cs.last[conv] = rec.Seq
		arr[rec.Seq] = who
	default: // at or below the cursor
		_, seen := arr[rec.Seq]
		switch {
		case isAck && known:
			cs.repeatAcks++ // the answer to a resend of what already arrived
		case seen || rec.Seq <= cs.base[conv]:
			r.add(DeliveryDuplicate, "conn %s: %s#%d (%s %s) arrived again after #%d", rec.Conn, conv, rec.Seq, rec.T, who, last)
		default:
			r.add(DeliveryOutOfOrder, "conn %s: %s#%d (%s %s) arrived after #%d", rec.Conn, conv, rec.Seq, rec.T, who, last)
			arr[rec.Seq] = who
		}
	}
}

// expectedRows replays TIMELINE into the history projection.
func expectedRows(st State, inScope func(string) bool) map[convSeq]Row {
	want := map[convSeq]Row{}
	for _, e := range st.Timeline {
		if !inScope(e.Conv) {
			continue
		}
		k := convSeq{e.Conv, e.Seq}
		if _, ok := want[k]; ok {
			continue // a duplicate seq: the first stored wins, like the projector's ON CONFLICT
		}
		want[k] = Row{Conv: e.Conv, Seq: e.Seq, Kind: e.Kind, CmdID: e.ID, Sender: e.From, Body: compact(e.Body), Target: e.Target, Member: e.User}
	}
	for _, e := range st.Timeline {
		if e.Kind != "recall" || !inScope(e.Conv) {
			continue
		}
		k := convSeq{e.Conv, e.Target}
		if row, ok := want[k]; ok && row.Kind == "message" {
			row.Recalled, row.Body = true, nil
			want[k] = row
		}
	}
	return want
}

func compact(b []byte) []byte {
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return b
	}
	return buf.Bytes()
}

func checkHistory(r *Report, st State, inScope func(string) bool) {
	if !st.HistoryLoaded {
		return
	}
	want := expectedRows(st, inScope)
	got := map[convSeq]Row{}
	for _, row := range st.History {
		if !inScope(row.Conv) {
			continue
		}
		r.Stats.HistoryRows++
		got[convSeq{row.Conv, row.Seq}] = row
	}
	keys := slices.SortedFunc(maps.Keys(want), cmpConvSeq)
	for _, k := range keys {
		w := want[k]
		g, ok := got[k]
		if !ok {
			r.add(HistoryMismatch, "history lacks %s#%d (%s %s/%s)", k.conv, k.seq, w.Kind, w.Sender, w.CmdID)
			continue
		}
		if d := diffRow(w, g); d != "" {
			r.add(HistoryMismatch, "history %s#%d differs from the replay: %s", k.conv, k.seq, d)
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(got), cmpConvSeq) {
		if _, ok := want[k]; !ok {
			g := got[k]
			r.add(HistoryMismatch, "history has %s#%d (%s %s/%s), TIMELINE does not", k.conv, k.seq, g.Kind, g.Sender, g.CmdID)
		}
	}
}

func cmpConvSeq(a, b convSeq) int {
	if c := strings.Compare(a.conv, b.conv); c != 0 {
		return c
	}
	return int(a.seq - b.seq)
}

func diffRow(w, g Row) string {
	var d []string
	if w.Kind != g.Kind {
		d = append(d, fmt.Sprintf("kind %q want %q", g.Kind, w.Kind))
	}
	if w.CmdID != g.CmdID {
		d = append(d, fmt.Sprintf("id %q want %q", g.CmdID, w.CmdID))
	}
	if w.Sender != g.Sender {
		d = append(d, fmt.Sprintf("sender %q want %q", g.Sender, w.Sender))
	}
	if w.Target != g.Target {
		d = append(d, fmt.Sprintf("target %d want %d", g.Target, w.Target))
	}
	if w.Member != g.Member {
		d = append(d, fmt.Sprintf("user %q want %q", g.Member, w.Member))
	}
	if w.Recalled != g.Recalled {
		d = append(d, fmt.Sprintf("recalled %v want %v", g.Recalled, w.Recalled))
	}
	if !bytes.Equal(compact(g.Body), w.Body) {
		d = append(d, fmt.Sprintf("body %s want %s", g.Body, w.Body))
	}
	return strings.Join(d, ", ")
}

// ExpectedUnread replays TIMELINE into the unread projection: user →
// conversation → unread seqs (sets that would be empty are left out).
func ExpectedUnread(st State, inScope func(string) bool) map[string]map[string]map[int64]bool {
	type mk struct{ conv, user string }
	members := map[string][]Member{}
	for _, m := range st.Members {
		members[m.Conv] = append(members[m.Conv], m)
	}
	want := map[mk]map[int64]bool{}
	for _, e := range st.Timeline {
		if !inScope(e.Conv) {
			continue
		}
		switch e.Kind {
		case "message":
			for _, m := range members[e.Conv] {
				if m.User == e.From || m.JoinedSeq > e.Seq || e.Seq <= m.ReadSeq {
					continue
				}
				k := mk{e.Conv, m.User}
				if want[k] == nil {
					want[k] = map[int64]bool{}
				}
				want[k][e.Seq] = true
			}
		case "recall":
			for k, set := range want {
				if k.conv == e.Conv {
					delete(set, e.Target)
				}
			}
		case "member_left":
			delete(want, mk{e.Conv, e.User})
		}
	}
	out := map[string]map[string]map[int64]bool{}
	for k, set := range want {
		if len(set) == 0 {
			continue
		}
		if out[k.user] == nil {
			out[k.user] = map[string]map[int64]bool{}
		}
		out[k.user][k.conv] = set
	}
	return out
}

func checkUnread(r *Report, st State, inScope func(string) bool) {
	if !st.UnreadLoaded {
		return
	}
	want := ExpectedUnread(st, inScope)
	type uc struct{ user, conv string }
	pairs := map[uc]bool{}
	for u, convs := range want {
		for c := range convs {
			pairs[uc{u, c}] = true
		}
	}
	for u, convs := range st.Unread {
		for c, seqs := range convs {
			if inScope(c) {
				r.Stats.UnreadSets++
				if len(seqs) > 0 {
					pairs[uc{u, c}] = true
				}
			}
		}
	}
	sorted := slices.Collect(maps.Keys(pairs))
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].conv != sorted[j].conv {
			return sorted[i].conv < sorted[j].conv
		}
		return sorted[i].user < sorted[j].user
	})
	for _, p := range sorted {
		w := want[p.user][p.conv]
		got := map[int64]bool{}
		for _, s := range st.Unread[p.user][p.conv] {
			got[s] = true
		}
		var missing, extra []int64
		for s := range w {
			if !got[s] {
				missing = append(missing, s)
			}
		}
		for s := range got {
			if !w[s] {
				extra = append(extra, s)
			}
		}
		if len(missing) == 0 && len(extra) == 0 {
			continue
		}
		slices.Sort(missing)
		slices.Sort(extra)
		r.add(UnreadMismatch, "unread of %s in %s: %d in Redis, %d by replay; missing %v, extra %v",
			p.user, p.conv, len(got), len(w), head(missing), head(extra))
	}
}

func head(s []int64) []int64 {
	if len(s) > maxDetailSeqsInDiff {
		return s[:maxDetailSeqsInDiff]
	}
	return s
}

// Convs returns the conversations a history mentions (in sends, acks,
// events and sync cursors).
func Convs(history []Record) map[string]bool {
	out := map[string]bool{}
	for _, r := range history {
		if r.Conv != "" {
			out[r.Conv] = true
		}
		for c := range r.Cursors {
			out[c] = true
		}
	}
	return out
}
