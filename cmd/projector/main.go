// Command projector runs the projector role alone (or, as "projector rebuild",
// replays TIMELINE into emptied projections); see docs/architecture.md for
// what it does and docs/deployment.md for how to run it beside the other roles.
package main

import "github.com/seqchat/seqchat/internal/wiring"

func main() { wiring.Main(wiring.Projector) }
