package edge

import (
	"context"
	"slices"
	"time"

	"github.com/seqchat/seqchat/events"
)

// Reads from history: the replay a sync asks for and the repair of a gap.

// sync replays what came after the client's cursors, then answers synced.
// Live events of the named conversations that arrive meanwhile wait in their
// streams and follow the synced frame, neither lost nor repeated.
func (c *conn) sync(id string, cursors map[string]int64) {
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	convs := make([]string, 0, len(cursors))
	for conv := range cursors {
		convs = append(convs, conv)
	}
	slices.Sort(convs)
	joined, err := c.e.member(ctx, c.user, convs)
	if err != nil {
		c.fail(id, err)
		return
	}
	// Hold the live events from here on: anything appended after the head
	// read below arrives after this point.
	c.beginSync(convs)
	heads := make(map[string]int64, len(convs))
	for _, conv := range convs {
		head, sent, err := c.replay(ctx, conv, max(cursors[conv]+1, joined[conv]))
		if err != nil {
			c.fail(id, err)
		}
		if err != nil || !sent {
			c.abandonSync(convs)
			return
		}
		heads[conv] = head
	}
	c.settleSync(id, convs, heads)
}

// beginSync holds the live events of convs until the sync settles.
func (c *conn) beginSync(convs []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nSyncs++
	for _, conv := range convs {
		c.stream(conv).syncing++
	}
}

// replay sends conv's events from seq from on, up to its head (at most
// maxReplay of them), and returns that head; sent is false when the
// connection closed meanwhile.
func (c *conn) replay(ctx context.Context, conv string, from int64) (head int64, sent bool, err error) {
	head, err = c.e.hist.Head(ctx, conv)
	if err != nil {
		return 0, false, err
	}
	to := min(head, from+maxReplay-1)
	if from > to {
		return head, true, nil // nothing after the cursor (or a cursor past the head)
	}
	list, err := c.e.hist.Range(ctx, conv, from, to)
	if err != nil {
		return 0, false, err
	}
	// Nothing else of conv enters the queue while it syncs, so these
	// can go out without the lock, paced by the client's reading. They are
	// encoded a few at a time, so that the writer starts on the first ones
	// while the rest are encoded.
	var frames [][]byte
	for len(list) > 0 {
		n := min(len(list), replayChunk)
		frames = replayFrames(list[:n], frames[:0])
		list = list[n:]
		for _, f := range frames {
			if !c.sendPaced(f) {
				return head, false, nil
			}
		}
	}
	return head, true, nil
}

// abandonSync ends a sync that failed or whose connection is closing: the
// live events it held go on as if it had not been asked for.
func (c *conn) abandonSync(convs []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nSyncs--
	for _, conv := range convs {
		s := c.streams[conv]
		s.syncing--
		if !c.holding() {
			s.release() // no cursor from this sync: start at what is held
		}
		c.flush(conv, s)
	}
	// A failed sync is no first sync: the wait for one goes on.
	c.releaseIfDue()
	c.armHold()
}

// settleSync answers synced with heads: live delivery goes on above them.
func (c *conn) settleSync(id string, convs []string, heads map[string]int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nSyncs--
	var acks [][]byte
	for _, conv := range convs {
		// Live delivery goes on above the head answered: what a replay
		// cut at maxReplay left out, the client syncs again for.
		acks = c.streams[conv].settle(heads[conv], acks)
	}
	for _, a := range acks {
		c.send(a)
	}
	c.send(encode(syncedFrame{Type: "synced", ID: id, Heads: heads}))
	// The first answer ends the hold of every conversation (release
	// flushes them all); later ones flush their own.
	if c.holding() {
		c.release()
		return
	}
	for _, conv := range convs {
		c.flush(conv, c.streams[conv])
	}
}

// repair reads a hole that did not fill by itself from history.
func (c *conn) repair(conv string) {
	c.mu.Lock()
	s := c.streams[conv]
	if s == nil {
		c.mu.Unlock()
		return
	}
	s.timer = nil
	from, to, ok := s.hole()
	if !ok || c.ctx.Err() != nil {
		c.mu.Unlock()
		return
	}
	to = min(to, from+maxReplay-1)
	s.repairing = true
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	list, err := c.e.hist.Events(ctx, conv, from, to)
	cancel()

	c.mu.Lock()
	defer c.mu.Unlock()
	s.repairing = false
	if err != nil {
		if c.ctx.Err() == nil {
			c.e.opt.Log.Warn("repair gap", "conv", conv, "from", from, "to", to, "err", err)
			s.timer = time.AfterFunc(time.Second, func() { c.repair(conv) })
		}
		return
	}
	c.e.m.repairs.Inc()
	for i := range list {
		ev := &list[i]
		s.addEvent(ev.Seq, eventFrame(ev.Encode()), c.ownID(conv, ev.ID, ev.From))
	}
	c.flush(conv, s)
}

// replayChunk is how many events of a replay are encoded at once.
const replayChunk = 64

// replayFrames appends the event frames of list to out: the bytes
// eventFrame(ev.Encode()) gives, encoded into one buffer for the page
// rather than twice into two of their own per event.
func replayFrames(list []events.Event, out [][]byte) [][]byte {
	// One buffer for the chunk's frames, each an event as json.Marshal
	// writes it (Event.AppendJSON) with the frame's type in front.
	size := 0
	for i := range list {
		size += 192 + len(list[i].Body)
	}
	page := make([]byte, 0, size)
	for i := range list {
		start := len(page)
		page = list[i].AppendJSON(page)
		if len(page)-start < 2 || page[start] != '{' {
			page = page[:start] // never: an Event always encodes as an object
			continue
		}
		// {"conv":… becomes {"type":"event","conv":…
		page = append(page, `"type":"event",`...)
		copy(page[start+1+len(`"type":"event",`):], page[start+1:len(page)-len(`"type":"event",`)])
		copy(page[start+1:], `"type":"event",`)
		out = append(out, page[start:len(page):len(page)])
	}
	return out
}
