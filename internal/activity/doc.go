// Package activity keeps in Redis what users are doing right now, shared
// by every replica of the api and the edge: which connections each user
// holds on which edge (Presence: who is online, where fanout sends), and how
// much each user and address did in the current window (the rate limits:
// Windows, Shared). All of it may be lost with Redis: presence refills
// within a heartbeat, and a limit window starts over. The unread counts,
// Redis's other use, are unread/'s.
package activity
