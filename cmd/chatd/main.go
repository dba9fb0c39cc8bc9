// Command chatd runs every role in one process with an embedded JetStream
// server: the way to try the system on one machine. As "chatd rebuild" it
// replays TIMELINE into emptied projections, as "projector rebuild" does.
package main

import "github.com/seqchat/seqchat/internal/wiring"

func main() { wiring.Main(wiring.AllRoles...) }
