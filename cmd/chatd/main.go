// Command chatd runs every role in one process with an embedded JetStream
// server: the way to try the system on one machine.
package main

import "github.com/seqchat/seqchat/internal/wiring"

func main() { wiring.Main(wiring.AllRoles...) }
