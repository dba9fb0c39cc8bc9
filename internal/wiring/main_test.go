package wiring

import (
	"slices"
	"testing"
)

// Only the binaries that run the projector rebuild; the others refuse any
// command instead of rebuilding or running their role regardless.
func TestCommand(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		roles   []Role
		rebuild bool
		flags   []string
		refused bool
	}{
		{args: nil, roles: []Role{API}},
		{args: []string{"-http-addr", ":0"}, roles: []Role{API}, flags: []string{"-http-addr", ":0"}},
		{args: []string{"rebuild"}, roles: []Role{Projector}, rebuild: true, flags: []string{}},
		{args: []string{"rebuild", "-redis-url", "redis://x"}, roles: AllRoles, rebuild: true, flags: []string{"-redis-url", "redis://x"}},
		{args: []string{"rebuild"}, roles: []Role{API}, refused: true},
		{args: []string{"rebuild"}, roles: []Role{Edge}, refused: true},
		{args: []string{"rebuild"}, roles: []Role{Sequencer}, refused: true},
		{args: []string{"serve"}, roles: []Role{Projector}, refused: true},
	} {
		rebuild, flags, err := command(tc.args, tc.roles)
		if (err != nil) != tc.refused || rebuild != tc.rebuild || (!tc.refused && !slices.Equal(flags, tc.flags)) {
			t.Errorf("command(%q, %v) = %v, %q, %v; want rebuild %v, flags %q, refused %v", tc.args, tc.roles, rebuild, flags, err, tc.rebuild, tc.flags, tc.refused)
		}
	}
}
