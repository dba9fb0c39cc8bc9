// Package browser tests the web client (web/) end to end: Debian's Chromium,
// driven headless through chromedp, against the real one-process server
// booted in-process.
//
//	go test -count=1 ./tests/browser/                      # the test
//	go test -count=1 ./tests/browser/ -screenshot ../../docs/screenshot.png
//
// Without /usr/bin/chromium the test skips, except under CI (CI set), where
// it fails: .ci/run installs the chromium package.
package browser_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/seqchat/seqchat/internal/config"
	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/internal/wiring"
)

const chromiumPath = "/usr/bin/chromium"

var screenshotPath = flag.String("screenshot", "", "also write the conversation screenshot to this file (e.g. ../../docs/screenshot.png)")

func TestWebClient(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing: CI must run the browser test (.ci/run installs the chromium package): %v", chromiumPath, err)
		}
		t.Skipf("%s is missing, so the browser test cannot run (apt-get install chromium); CI never skips it", chromiumPath)
	}
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // the whole test, Chromium included, on a loaded machine
	defer cancel()

	srv := startServer(t, testenv.Config(t))
	base := "http://" + srv.addr()

	allocCtx, stopAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		// Two users share one browser: keep neither tab throttled.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("lang", "en-US"),
		chromedp.WindowSize(1100, 720),
	)
	defer stopAlloc()
	browserCtx, stopBrowser := chromedp.NewContext(allocCtx)
	defer stopBrowser()
	if err := chromedp.Do(browserCtx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}

	// Two users, each in a browser context of their own (own localStorage):
	// alice on a desktop-sized window, bob on a phone-sized one.
	alice := openPage(t, browserCtx, "alice", 1100, 720)
	bob := openPage(t, browserCtx, "bob", 390, 780)
	alice.goTo(base + "/")
	bob.goTo(base + "/")

	// Sign up.
	for _, p := range []*page{alice, bob} {
		p.do(
			chromedp.WaitVisible(chromedp.CSS("#username")),
			chromedp.SendKeys(chromedp.CSS("#username"), p.name),
			chromedp.SendKeys(chromedp.CSS("#password"), "password1"),
			chromedp.Click(chromedp.CSS("#signup")),
		)
	}
	for _, p := range []*page{alice, bob} {
		p.wait("the signed-in app", `!!document.querySelector('#convs') && seqchat.status() === 'online'`, 30*time.Second)
		p.wait("the empty conversation list", `!document.querySelector('#convs-empty').hidden`, 30*time.Second)
	}

	// Alice befriends bob by username; the friendship is mutual.
	alice.do(
		chromedp.Click(chromedp.CSS("#tab-friends")),
		chromedp.SendKeys(chromedp.CSS("#friend-name"), "bob\r"),
	)
	alice.wait("bob in alice's friends", `!!document.querySelector('#friends li[data-user="bob"]')`, 30*time.Second)
	bob.do(chromedp.Click(chromedp.CSS("#tab-friends")))
	bob.wait("alice in bob's friends", `!!document.querySelector('#friends li[data-user="alice"]')`, 30*time.Second)
	bob.do(chromedp.Click(chromedp.CSS("#tab-chats")))

	// Alice opens a direct conversation from her friends list.
	alice.do(chromedp.Click(chromedp.CSS(`#friends li[data-user="bob"] button`)))
	alice.wait("the conversation with bob", `document.querySelector('#conv-title')?.textContent === 'bob' && location.hash.startsWith('#/c/')`, 30*time.Second)
	// Recalls in this test go out almost at once; the undo is tested below.
	for _, p := range []*page{alice, bob} {
		p.eval(`seqchat.setRecallUndo(200)`)
	}
	conv := strings.TrimPrefix(alice.str(`location.hash`), "#/c/")

	// Three messages while bob looks at his list: his badge counts them.
	first := []string{"Hey Bob! Are you around?", "The deploy went out this morning, everything is green.", "Coffee at 11?"}
	for i, text := range first {
		alice.send(text)
		alice.waitSent(text, 30*time.Second)
		bob.wait(fmt.Sprintf("bob's badge at %d", i+1),
			fmt.Sprintf(`document.querySelector('#convs [data-conv=%q] .badge')?.textContent === '%d'`, conv, i+1), 30*time.Second)
	}
	if alice.bool(fmt.Sprintf(`!!document.querySelector('#convs [data-conv=%q] .badge')`, conv)) {
		t.Errorf("alice's own messages count as unread for her")
	}
	bob.wait("the list's preview", fmt.Sprintf(`document.querySelector('#convs [data-conv=%q] .conv-preview')?.textContent === 'Coffee at 11?'`, conv), 30*time.Second)

	// Bob opens it: the badge clears, here and on the server.
	bob.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`#convs [data-conv=%q]`, conv))))
	bob.wait("the three messages on bob's side", `document.querySelectorAll('#msgs .msg.theirs').length === 3`, 30*time.Second)
	if !bob.bool(`getComputedStyle(document.querySelector('.sidebar')).display === 'none' && getComputedStyle(document.querySelector('.back')).display !== 'none'`) {
		t.Errorf("phone-sized window: the open conversation should take the whole screen, with a back button")
	}
	bob.wait("bob's badge cleared", fmt.Sprintf(`!document.querySelector('#convs [data-conv=%q] .badge')`, conv), 30*time.Second)
	bobToken := bob.str(`JSON.parse(localStorage.getItem('seqchat.session')).token`)
	aliceToken := alice.str(`JSON.parse(localStorage.getItem('seqchat.session')).token`)
	aliceID := alice.str(`JSON.parse(localStorage.getItem('seqchat.session')).user_id`)
	bobID := bob.str(`JSON.parse(localStorage.getItem('seqchat.session')).user_id`)
	eventually(t, 30*time.Second, "bob's unread total at 0 on the server", func() bool {
		var u struct{ Total int }
		return getJSON(base+"/v1/unread", bobToken, &u) == nil && u.Total == 0
	})
	eventually(t, 30*time.Second, "bob's read receipt on the server", func() bool {
		var r struct{ Receipts map[string]int64 }
		return getJSON(base+"/v1/conversations/"+conv+"/receipts", aliceToken, &r) == nil && r.Receipts[bobID] >= 3
	})
	// Alice sees "Seen" under her last message (receipt frames or polling).
	alice.wait(`"Seen" on alice's side`, `document.querySelector('#msgs .msg.mine.last .st.seen') !== null`, 30*time.Second)

	// Bob answers.
	for _, text := range []string{"Hi Alice! Just got in.", "Sounds good, see you there."} {
		bob.send(text)
		bob.waitSent(text, 30*time.Second)
		alice.wait("bob's answer at alice", jsHasText(".msg.theirs", text), 30*time.Second)
	}

	// Bob replies to alice's question, quoting it; alice edits the question
	// (the quote follows); both react to it and bob takes his reaction back.
	coffee, coffee2, reply := "Coffee at 11?", "Coffee at 11:30?", "Works for me."
	msgJS := func(sel, text string) string {
		return fmt.Sprintf(`[...document.querySelectorAll('#msgs %s')].find(m => m.querySelector('.text')?.textContent === %q)`, sel, text)
	}
	bob.wait("a reply button", msgJS(".msg.theirs", coffee)+`?.querySelector('button.reply')`, 30*time.Second)
	bob.eval(msgJS(".msg.theirs", coffee) + `.querySelector('button.reply').click()`)
	bob.wait("the reply bar", fmt.Sprintf(`!document.querySelector('#draft').hidden && document.querySelector('#draft q')?.textContent === %q`, coffee), 30*time.Second)
	bob.send(reply)
	bob.waitSent(reply, 30*time.Second)
	bob.wait("the reply bar gone", `document.querySelector('#draft').hidden`, 30*time.Second)
	quoted := func(text string) string {
		return fmt.Sprintf(`%s?.querySelector('.quote-text')?.textContent === %q`, msgJS(".msg", reply), text)
	}
	for _, p := range []*page{alice, bob} {
		p.wait("the reply quoting the question", quoted(coffee), 30*time.Second)
	}
	alice.eval(msgJS(".msg.mine", coffee) + `.querySelector('button.edit').click()`)
	alice.wait("the composer editing", fmt.Sprintf(`document.querySelector('#composer').value === %q && document.querySelector('#draft').textContent.includes('Editing')`, coffee), 30*time.Second)
	alice.eval(`document.querySelector('#composer').value = ''`)
	alice.send(coffee2)
	for _, p := range []*page{alice, bob} {
		p.wait("the edit", msgJS(".msg", coffee2)+`?.querySelector('.edited') && `+quoted(coffee2)+` && !`+jsHasText(".msg", coffee), 30*time.Second)
	}
	if n := alice.int(`document.querySelectorAll('#msgs .msg').length`); n != 6 {
		t.Errorf("alice shows %d messages after the edit, want 6 (an edit is not a message)", n)
	}
	chip := func(want string) string {
		return fmt.Sprintf(`(%s?.querySelector('.chip')?.textContent ?? '') === %q`, msgJS(".msg", coffee2), want)
	}
	bob.eval(msgJS(".msg.theirs", coffee2) + `.querySelector('button.react[data-emoji="👍"]').click()`)
	for _, p := range []*page{alice, bob} {
		p.wait("bob's reaction", chip("👍 1"), 30*time.Second)
	}
	alice.eval(msgJS(".msg.mine", coffee2) + `.querySelector('button.react[data-emoji="👍"]').click()`)
	for _, p := range []*page{alice, bob} {
		p.wait("both reactions", chip("👍 2"), 30*time.Second)
	}
	bob.wait("bob's chip marked as his", msgJS(".msg.theirs", coffee2)+`.querySelector('.chip.on')`, 30*time.Second)
	bob.eval(msgJS(".msg.theirs", coffee2) + `.querySelector('.chip').click()`)
	for _, p := range []*page{alice, bob} {
		p.wait("bob's reaction taken back", chip("👍 1"), 30*time.Second)
	}

	// Bob types: alice sees it, and sees it stop when bob clears his draft
	// (well before an "on" would time out). Typing is best effort (a frame
	// the edge cannot forward within a second is dropped, as on a loaded
	// machine), and a client repeats it only while keys are pressed: so bob
	// goes on typing, a key a second, until alice sees it.
	bobTyping := `document.querySelector('#typing').textContent === 'bob is typing…'`
	keys := "Let me check"
	for deadline := time.Now().Add(30 * time.Second); ; keys = "." {
		bob.do(chromedp.SendKeys(chromedp.CSS("#composer"), keys))
		seen := false
		for end := time.Now().Add(time.Second); !seen && time.Now().Before(end); time.Sleep(25 * time.Millisecond) {
			seen = alice.bool(bobTyping)
		}
		if seen {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice: bob typed for 30 s and she never saw him typing%s", alice.errors())
		}
	}
	bob.eval(`const c = document.querySelector('#composer'); c.value = ''; c.dispatchEvent(new Event('input'))`)
	alice.wait("bob no longer typing", `document.querySelector('#typing').textContent === ''`, 30*time.Second)

	// Search finds a message by its words, across conversations; a result
	// opens its conversation.
	alice.do(chromedp.SendKeys(chromedp.CSS("#search-q"), "DEPLOY green\r"))
	alice.wait("the search result", fmt.Sprintf(`document.querySelectorAll('#search-results li[data-conv]').length === 1 && document.querySelector('#search-results li[data-conv=%q] .result-text')?.textContent === %q`, conv, first[1]), 30*time.Second)
	alice.do(chromedp.SendKeys(chromedp.CSS("#search-q"), " nosuchword\r"))
	alice.wait("no search result", `document.querySelector('#search-results .empty')?.textContent === 'No messages found.'`, 30*time.Second)
	alice.eval(`const q = document.querySelector('#search-q'); q.value = ''; q.dispatchEvent(new Event('input'))`)
	alice.wait("the search results gone", `document.querySelector('#search-results').hidden`, 30*time.Second)

	// A recall shows on both sides.
	oops := "Oops, that was meant for the team channel"
	alice.send(oops)
	alice.waitSent(oops, 30*time.Second)
	bob.wait("the message to recall at bob", jsHasText(".msg.theirs", oops), 30*time.Second)
	alice.recall(oops)
	for _, p := range []*page{alice, bob} {
		p.wait("the recall", `[...document.querySelectorAll('#msgs .msg[data-recalled=true]')].some(m => m.textContent.includes('Message recalled'))`, 30*time.Second)
		if p.bool(jsHasText(".msg", oops)) {
			t.Errorf("%s still shows the recalled text", p.name)
		}
	}

	// A group: alice creates it with bob, removes him and adds him back.
	alice.do(
		chromedp.Click(chromedp.CSS("#tab-friends")),
		chromedp.Click(chromedp.CSS("#new-group")),
		chromedp.WaitVisible(chromedp.CSS("#group-title")),
		chromedp.SendKeys(chromedp.CSS("#group-title"), "Weekend trip"),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#dialog input[type=checkbox][value=%q]`, bobID))),
		chromedp.Click(chromedp.CSS("#dialog button.primary")),
	)
	alice.wait("the new group", `document.querySelector('#conv-title')?.textContent === 'Weekend trip' && document.querySelector('.conv-head .sub')?.textContent === '2 members'`, 30*time.Second)
	group := strings.TrimPrefix(alice.str(`location.hash`), "#/c/")
	alice.send("Who is in for Saturday?")
	alice.waitSent("Who is in for Saturday?", 30*time.Second)
	bob.wait("the group in bob's list, unread", fmt.Sprintf(`document.querySelector('#convs [data-conv=%q] .badge')?.textContent === '1' && document.querySelector('#convs [data-conv=%q] .conv-title')?.textContent === 'Weekend trip'`, group, group), 30*time.Second)
	alice.do(chromedp.Click(chromedp.CSS("#members-btn")))
	alice.wait("the members dialog", `document.querySelectorAll('#dialog .members li').length === 2`, 30*time.Second)
	// Her own row's avatar shows her initial, not "Y" from "You".
	if got := alice.str(`[...document.querySelectorAll('#dialog .members li')].find(li => li.textContent.includes('(you)'))?.querySelector('.avatar')?.textContent ?? ''`); got != "A" {
		t.Errorf("alice's own avatar in the members dialog shows %q, want \"A\"", got)
	}
	alice.do(chromedp.Click(chromedp.CSS(`#dialog button[aria-label="Remove bob"]`)))
	alice.wait("bob removed", `document.querySelectorAll('#dialog .members li').length === 1 && [...document.querySelectorAll('#msgs .sys')].some(e => e.textContent === 'You removed bob')`, 30*time.Second)
	alice.do(chromedp.SendKeys(chromedp.CSS("#member-name"), "bob\r"))
	alice.wait("bob added back", `document.querySelectorAll('#dialog .members li').length === 2 && [...document.querySelectorAll('#msgs .sys')].some(e => e.textContent === 'You added bob')`, 30*time.Second)
	alice.eval(`document.querySelector('#dialog').close()`)
	alice.send("Bob is back in.")
	alice.waitSent("Bob is back in.", 30*time.Second)
	bob.wait("the group's news at bob", fmt.Sprintf(`document.querySelector('#convs [data-conv=%q] .conv-preview')?.textContent === 'alice: Bob is back in.'`, group), 30*time.Second)

	// Mentions: "@b" offers bob (a member); Tab completes; the message
	// carries his id.
	alice.do(chromedp.SendKeys(chromedp.CSS("#composer"), "Tickets, @b"))
	alice.wait("the mention completion", `!document.querySelector('#mention-list').hidden && [...document.querySelectorAll('#mention-list li')].map(li => li.dataset.user).join() === 'bob'`, 30*time.Second)
	alice.do(chromedp.SendKeys(chromedp.CSS("#composer"), "\t"))
	alice.wait("the completed mention", `document.querySelector('#composer').value === 'Tickets, @bob ' && document.querySelector('#mention-list').hidden`, 30*time.Second)
	alice.do(chromedp.SendKeys(chromedp.CSS("#composer"), "?\r"))
	alice.waitSent("Tickets, @bob ?", 30*time.Second)
	var mentioned struct {
		Events []struct {
			Mentions []string
			Body     struct{ Text string }
		}
	}
	if err := getJSON(base+"/v1/conversations/"+group+"/messages?limit=5", aliceToken, &mentioned); err != nil {
		t.Fatal(err)
	}
	if n := len(mentioned.Events); n == 0 || mentioned.Events[n-1].Body.Text != "Tickets, @bob ?" || !slices.Equal(mentioned.Events[n-1].Mentions, []string{bobID}) {
		t.Errorf("the mention did not go out with bob's id: %+v", mentioned.Events)
	}

	// A recall waits out an Undo toast before it goes out; Undo keeps the
	// message.
	kept := "Actually, keep this one"
	alice.send(kept)
	alice.waitSent(kept, 30*time.Second)
	// Long enough for the waits and the click below to come before it
	// ends on a loaded machine (each is a round trip to Chromium).
	const undoWindow = 10 * time.Second
	alice.eval(fmt.Sprintf(`seqchat.setRecallUndo(%d)`, undoWindow.Milliseconds()))
	alice.pressRecall(kept)
	alice.wait("the undo toast", `[...document.querySelectorAll('.toast')].some(t => t.textContent.includes('Recalling') && t.querySelector('button.toast-action')?.textContent === 'Undo')`, 30*time.Second)
	alice.wait("the message marked as being recalled", fmt.Sprintf(`[...document.querySelectorAll('#msgs .msg.mine')].some(m => m.querySelector('.text')?.textContent === %q && m.dataset.recalling === 'true' && !m.querySelector('button.recall'))`, kept), 30*time.Second)
	alice.eval(`[...document.querySelectorAll('.toast button.toast-action')].find(b => b.textContent === 'Undo').click()`)
	alice.wait("the recall undone", fmt.Sprintf(`[...document.querySelectorAll('#msgs .msg.mine')].some(m => m.querySelector('.text')?.textContent === %q && m.dataset.recalling === 'false' && m.querySelector('button.recall')) && ![...document.querySelectorAll('.toast')].some(t => t.textContent.includes('Recalling'))`, kept), 30*time.Second)
	// Past the undo window a recall not undone would have been queued; a
	// message sent now is sequenced after it, so once that message is in
	// the history, a recall would be too.
	time.Sleep(undoWindow + 500*time.Millisecond)
	after := "Kept it"
	alice.send(after)
	alice.waitSent(after, 30*time.Second)
	var groupPage struct {
		Events []struct {
			Kind     string
			Recalled bool
			Body     struct{ Text string }
		}
	}
	if err := getJSON(base+"/v1/conversations/"+group+"/messages?after_seq=0&limit=100", bobToken, &groupPage); err != nil {
		t.Fatal(err)
	}
	var keptShown, afterShown bool
	for _, ev := range groupPage.Events {
		switch {
		case ev.Kind == "recall":
			t.Errorf("the undone recall went out: %+v", groupPage.Events)
		case ev.Body.Text == kept && !ev.Recalled:
			keptShown = true
		case ev.Body.Text == after:
			afterShown = true
		}
	}
	if !keptShown || !afterShown {
		t.Errorf("bob's page of the group lacks the kept message or the one after it: %+v", groupPage.Events)
	}
	alice.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`#convs [data-conv=%q]`, conv))))
	alice.wait("back in the direct conversation", `document.querySelector('#conv-title')?.textContent === 'bob' && document.querySelectorAll('#msgs .msg').length === 7`, 30*time.Second)

	// The screenshot of a conversation (alice's desktop window).
	alice.eval(`document.querySelectorAll('.toast').forEach(t => t.remove()); document.activeElement?.blur()`)
	time.Sleep(300 * time.Millisecond) // let the last frame paint
	shot, err := chromedp.Run(alice.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(t.TempDir()+"/screenshot.png", shot, 0o644); err != nil {
		t.Fatal(err)
	}
	if *screenshotPath != "" {
		if err := os.WriteFile(*screenshotPath, shot, 0o644); err != nil {
			t.Fatalf("write screenshot: %v", err)
		}
		t.Logf("screenshot written to %s (%d bytes)", *screenshotPath, len(shot))
	}

	// Bob's socket drops. Meanwhile alice recalls one message and sends 20,
	// and bob writes one that must wait.
	away := "This one gets recalled while you are away"
	alice.send(away)
	alice.waitSent(away, 30*time.Second)
	bob.wait("the message before the drop", jsHasText(".msg.theirs", away), 30*time.Second)
	aliceDot := fmt.Sprintf(`document.querySelector('#convs [data-conv=%q] .dot')?.dataset.presence`, conv)
	bob.wait("alice online in bob's list", aliceDot+` === 'on'`, 30*time.Second)
	bob.eval(`seqchat.disconnect()`)
	bob.wait("bob offline", `seqchat.status() === 'offline' && document.querySelector('#status').dataset.state === 'offline'`, 30*time.Second)
	// Bob's own socket is down: he cannot know who is online, so alice's dot
	// is not left green.
	bob.wait("alice's presence unknown while bob is offline", aliceDot+` === 'unknown' && !document.querySelector('.dot.on')`, 30*time.Second)
	offline := "Typed while offline"
	bob.send(offline)
	bob.wait("bob's message pending", fmt.Sprintf(`[...document.querySelectorAll('#msgs .msg.mine')].some(m => m.dataset.state === 'pending' && m.textContent.includes(%q))`, offline), 30*time.Second)
	alice.recall(away)
	alice.wait("alice's recall", `document.querySelectorAll('#msgs .msg[data-recalled=true]').length === 2`, 30*time.Second)
	var burst []string
	for i := 1; i <= 20; i++ {
		burst = append(burst, fmt.Sprintf("burst %02d", i))
		alice.send(burst[i-1])
	}
	for _, text := range burst {
		alice.waitSent(text, 30*time.Second)
	}
	if n := bob.int(`[...document.querySelectorAll('#msgs .msg')].filter(m => m.textContent.includes('burst')).length`); n != 0 {
		t.Fatalf("bob is offline but shows %d of the burst", n)
	}
	if bob.bool(`[...document.querySelectorAll('#msgs .msg[data-state=sent]')].some(m => m.textContent.includes('Typed while offline'))`) {
		t.Fatalf("bob's message shows as sent while offline")
	}
	sendsBeforeRestart := alice.floats(`seqchat.timings.sends`)

	bob.eval(`seqchat.reconnect()`)
	bob.wait("bob back online", `seqchat.status() === 'online'`, 30*time.Second)
	bob.wait("alice's presence known again after the reconnect", aliceDot+` === 'on'`, 30*time.Second)
	bob.wait("the whole burst at bob", `[...document.querySelectorAll('#msgs .msg')].filter(m => m.textContent.includes('burst')).length >= 20`, 30*time.Second)
	bob.waitSent(offline, 30*time.Second)
	alice.wait("bob's offline message at alice", jsHasText(".msg.theirs", offline), 30*time.Second)
	bob.wait("the recall made while bob was away", fmt.Sprintf(`document.querySelectorAll('#msgs .msg[data-recalled=true]').length === 2 && !%s`, jsHasText(".msg", away)), 30*time.Second)
	time.Sleep(300 * time.Millisecond) // a late duplicate would show by now
	checkTimeline(t, bob, burst, map[string]int{offline: 1})
	checkTimeline(t, alice, burst, map[string]int{offline: 1})

	// The server restarts: both sockets drop, both clients reconnect with
	// backoff, and a message written meanwhile goes out once.
	srv.stop(t)
	for _, p := range []*page{alice, bob} {
		p.wait("offline during the restart", `seqchat.status() !== 'online'`, 30*time.Second)
	}
	during := "Written while the server restarts"
	alice.send(during)
	srv.start(t)
	for _, p := range []*page{alice, bob} {
		p.wait("online after the restart", `seqchat.status() === 'online'`, 30*time.Second)
	}
	alice.waitSent(during, 30*time.Second)
	bob.wait("the message written during the restart", jsHasText(".msg.theirs", during), 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	checkTimeline(t, bob, burst, map[string]int{offline: 1, during: 1})
	checkTimeline(t, alice, burst, map[string]int{offline: 1, during: 1})

	// After a reload (cursors, history and recall state from the server)
	// everything is still there once, in order.
	var loads []float64
	for range 3 {
		alice.do(chromedp.Reload())
		alice.wait("the conversation list after a reload", `seqchat.timings.convlist != null && !!document.querySelector('#convs [data-conv]')`, 30*time.Second)
		loads = append(loads, alice.float(`seqchat.timings.convlist`))
	}
	alice.wait("alice's conversation after a reload", `document.querySelectorAll('#msgs .msg').length >= 29 && seqchat.status() === 'online'`, 30*time.Second)
	checkTimeline(t, alice, burst, map[string]int{offline: 1, during: 1})
	if !alice.bool(`document.querySelectorAll('#msgs .msg[data-recalled=true]').length === 2`) {
		t.Errorf("after a reload alice does not show the two recalled messages")
	}
	if !alice.bool(msgJS(".msg.mine", coffee2)+`?.querySelector('.edited')`) || !alice.bool(chip("👍 1")) || !alice.bool(quoted(coffee2)) {
		t.Errorf("after a reload alice does not show the edit, the reaction or the reply's quote")
	}
	// Her reaction, counted by the history page, is still hers: the chip
	// takes it back.
	alice.eval(msgJS(".msg.mine", coffee2) + `.querySelector('.chip').click()`)
	alice.wait("alice's reaction taken back after a reload", msgJS(".msg.mine", coffee2)+` && !`+msgJS(".msg.mine", coffee2)+`.querySelector('.chip')`, 30*time.Second)
	_ = aliceID

	// Paging backwards: a fresh page of 50 plus older ones on scroll-up.
	var sentREST int
	for i := range 60 {
		if err := postJSON(base+"/v1/conversations/"+conv+"/messages", aliceToken, map[string]any{"id": fmt.Sprintf("page%03d", i), "body": map[string]string{"text": fmt.Sprintf("page %03d", i)}}); err != nil {
			t.Fatalf("send over REST: %v", err)
		}
		sentREST++
	}
	bob.do(chromedp.Reload())
	bob.wait("bob's list after a reload", fmt.Sprintf(`!!document.querySelector('#convs [data-conv=%q]')`, conv), 30*time.Second)
	bob.wait("bob's conversation after a reload", `document.querySelectorAll('#msgs .msg').length >= 50 && seqchat.status() === 'online'`, 30*time.Second)
	bob.eval(`document.querySelector('#scroller').scrollTop = 0`)
	bob.wait("older history paged in on scroll-up", `[...document.querySelectorAll('#msgs .msg')].some(m => m.textContent.includes('Hey Bob! Are you around?'))`, 30*time.Second)
	bob.wait("the beginning of the conversation", `document.querySelector('#sentinel').textContent.includes('beginning')`, 30*time.Second)
	checkTimeline(t, bob, burst, map[string]int{offline: 1, during: 1})

	// Figures.
	sends := sendsBeforeRestart
	t.Logf("FIGURE page load -> conversation list (reloads, ms since navigation start): %s", fmtMs(loads))
	if len(sends) < len(burst) {
		t.Fatalf("only %d send timings", len(sends))
	}
	single, burstT := sends[:len(sends)-len(burst)], sends[len(sends)-len(burst):]
	t.Logf("FIGURE press send -> shown as sent, one at a time (%d sends, ms): median %.1f, max %.1f (%s)",
		len(single), pct(single, 50), pct(single, 100), fmtMs(single))
	t.Logf("FIGURE press send -> shown as sent, 20 typed back to back (ms): median %.1f, p90 %.1f, max %.1f",
		pct(burstT, 50), pct(burstT, 90), pct(burstT, 100))
	alice.checkErrors(t)
	bob.checkErrors(t)
	t.Logf("browser test took %v", time.Since(began).Round(time.Millisecond))
}

// ---------------------------------------------------------------- server --

type server struct {
	cfg config.Config
	a   *wiring.System
	t   *testing.T
}

func startServer(t *testing.T, cfg config.Config) *server {
	cfg.RateLimits = false
	s := &server{cfg: cfg, t: t}
	s.start(t)
	// Once it has an address, restarts reuse it: the pages keep their origin.
	s.cfg.HTTPAddr = s.a.Addr
	t.Cleanup(func() { s.stop(t) })
	return s
}

func (s *server) addr() string { return s.a.Addr }

func (s *server) start(t *testing.T) {
	t.Helper()
	var err error
	for range 50 { // the old listener may linger for a moment
		s.a, err = wiring.Start(context.Background(), s.cfg, testenv.Logger(t), wiring.AllRoles...)
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
}

func (s *server) stop(t *testing.T) {
	if s.a == nil {
		return
	}
	if err := s.a.Stop(); err != nil {
		t.Errorf("stop server: %v", err)
	}
	s.a = nil
}

// ------------------------------------------------------------------ pages --

type page struct {
	t    *testing.T
	name string
	ctx  context.Context
	mu   sync.Mutex
	errs []string
}

func openPage(t *testing.T, browserCtx context.Context, name string, w, h int64) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	p := &page{t: t, name: name, ctx: ctx}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(w, h)); err != nil {
		t.Fatalf("%s: open a tab: %v", name, err)
	}
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				p.mu.Lock()
				p.errs = append(p.errs, fmt.Sprintf("%s: %s", m.Type, m.String()))
				p.mu.Unlock()
			}
		}
	}()
	return p
}

func (p *page) goTo(url string) { p.do(chromedp.Navigate(url)) }

func (p *page) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v%s", p.name, err, p.errors())
	}
}

func evalAs[T any](p *page, js string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		p.t.Fatalf("%s: evaluate %s: %v%s", p.name, js, err, p.errors())
	}
	return v
}

func (p *page) eval(js string) { evalAs[chromedp.Void](p, `(()=>{`+js+`})()`) }

func (p *page) bool(js string) bool { return evalAs[bool](p, `!!(`+js+`)`) }

func (p *page) str(js string) string { return evalAs[string](p, js) }

func (p *page) int(js string) int { return evalAs[int](p, js) }

func (p *page) float(js string) float64 { return evalAs[float64](p, js) }

func (p *page) floats(js string) []float64 { return evalAs[[]float64](p, js) }

// wait polls a JavaScript condition until it holds.
func (p *page) wait(what, js string, d time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(()=>{try{return !!(`+js+`)}catch(e){return false}})()`))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: timed out after %v waiting for %s (%v)%s", p.name, d, what, err, p.errors())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// send types text into the composer and presses Enter.
func (p *page) send(text string) {
	p.t.Helper()
	p.do(chromedp.SendKeys(chromedp.CSS("#composer"), text+"\r"))
}

func (p *page) waitSent(text string, d time.Duration) {
	p.t.Helper()
	p.wait(fmt.Sprintf("%q shown as sent", text),
		fmt.Sprintf(`[...document.querySelectorAll('#msgs .msg.mine')].some(m => m.dataset.state === 'sent' && m.querySelector('.text')?.textContent === %q)`, text), d)
}

// recall recalls the user's own message with text (its undo window is
// short in this test: setRecallUndo).
func (p *page) recall(text string) {
	p.t.Helper()
	p.pressRecall(text)
}

// pressRecall presses the recall button of the user's own message with text.
func (p *page) pressRecall(text string) {
	p.t.Helper()
	p.wait("a recall button for "+text, fmt.Sprintf(`[...document.querySelectorAll('#msgs .msg.mine')].some(m => m.querySelector('.text')?.textContent === %q && m.querySelector('button.recall'))`, text), 30*time.Second)
	p.eval(fmt.Sprintf(`[...document.querySelectorAll('#msgs .msg.mine')].find(m => m.querySelector('.text')?.textContent === %q).querySelector('button.recall').click()`, text))
}

func (p *page) errors() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.errs) == 0 {
		return ""
	}
	return "\nbrowser console:\n  " + strings.Join(p.errs, "\n  ")
}

// checkErrors fails on uncaught exceptions; network errors of the restart
// (refused connections) are expected and only logged.
func (p *page) checkErrors(t *testing.T) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.errs {
		if strings.HasPrefix(e, "exception") {
			t.Errorf("%s: uncaught exception: %s", p.name, e)
		} else {
			t.Logf("%s console: %s", p.name, e)
		}
	}
}

func jsHasText(sel, text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('#msgs %s')].some(m => m.querySelector('.text')?.textContent === %q)`, sel, text)
}

// checkTimeline reads the page's message list and checks: seqs strictly
// increase, no message shows twice, the burst is there once and in order,
// and each of once shows exactly once.
func checkTimeline(t *testing.T, p *page, burst []string, once map[string]int) {
	t.Helper()
	type row struct {
		ID, Seq, State, Text, From string
	}
	rows := evalAs[[]row](p, `[...document.querySelectorAll('#msgs .msg')].map(m => ({ID: m.dataset.id, Seq: m.dataset.seq, State: m.dataset.state, From: m.dataset.from, Text: m.querySelector('.text')?.textContent || ''}))`)
	seen := map[string]bool{}
	last := -1
	var got []string
	count := map[string]int{}
	for _, r := range rows {
		key := r.From + "/" + r.ID
		if seen[key] {
			t.Errorf("%s: message %s shows twice", p.name, key)
		}
		seen[key] = true
		var seq int
		if _, err := fmt.Sscan(r.Seq, &seq); err != nil {
			t.Errorf("%s: message %q has no seq (state %s)", p.name, r.Text, r.State)
			continue
		}
		if seq <= last {
			t.Errorf("%s: seq %d after %d: out of order", p.name, seq, last)
		}
		last = seq
		if strings.HasPrefix(r.Text, "burst ") {
			got = append(got, r.Text)
		}
		count[r.Text]++
	}
	if !slices.Equal(got, burst) {
		t.Errorf("%s: the burst shows as %v, want %v once each, in order", p.name, got, burst)
	}
	for text, n := range once {
		if count[text] != n {
			t.Errorf("%s: %q shows %d times, want %d", p.name, text, count[text], n)
		}
	}
}

// ------------------------------------------------------------------- misc --

func getJSON(url, token string, out any) error {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, res.Status)
	}
	return json.NewDecoder(res.Body).Decode(out)
}

func postJSON(url, token string, body any) error {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(string(b)))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s", url, res.Status)
	}
	return nil
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func pct(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

func fmtMs(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(parts, ", ")
}
