package timeline

import (
	"strconv"
	"testing"

	"github.com/seqchat/seqchat/events"
)

// A conversation's commands wait on its partition's subject.
func TestCmdSubject(t *testing.T) {
	if CmdSubject(16, "c1") != "cmd."+strconv.Itoa(events.Partition("c1", 16))+".c1" {
		t.Fatal(CmdSubject(16, "c1"))
	}
}
