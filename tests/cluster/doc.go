// Package cluster runs the chat system the way an operator does, as separate
// OS processes built from this repository: a three-node NATS JetStream
// cluster (R3 streams), two sequencers, two projectors, two edges and one api,
// with a Postgres database and a redis-server of their own. It then breaks
// them while WebSocket clients chat (SIGKILL of a sequencer, a projector, an
// edge, a NATS node; a Redis restart; a Postgres outage; a rolling restart of
// every role) and checks every run with tests/check.
//
// The tests are slow, so they only run when asked:
//
//	CHAT_CLUSTER_TESTS=1 go test -count=1 -timeout 15m ./tests/cluster/
//
// .ci/run does that in a step of its own. Every process's output goes to a
// file in the test's temporary directory; a failing test prints their tails.
package cluster
