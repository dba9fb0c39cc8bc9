package docs

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seqchat/seqchat/internal/config"
)

var (
	envName  = regexp.MustCompile(`CHAT_[A-Z0-9_]+`)
	backtick = regexp.MustCompile("^`([^`]*)`")
)

// configTable returns README.md's configuration table: each variable with
// the text of its default cell.
func configTable(readme string) (map[string]string, error) {
	_, section, ok := strings.Cut(readme, "\n## Configuration\n")
	if !ok {
		return nil, fmt.Errorf("no \"## Configuration\" section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	rows := map[string]string{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `CHAT_") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) != 3 {
			return nil, fmt.Errorf("want | variable | meaning | default |: %s", line)
		}
		for _, env := range envName.FindAllString(cells[0], -1) {
			if _, dup := rows[env]; dup {
				return nil, fmt.Errorf("%s has two rows", env)
			}
			rows[env] = strings.TrimSpace(cells[2])
		}
	}
	return rows, nil
}

// sameDefault reports whether a default cell (`value`, or "empty" and an
// explanation) says the setting's default.
func sameDefault(cell string, s config.Setting) (bool, error) {
	var text string
	if m := backtick.FindStringSubmatch(cell); m != nil {
		text = m[1]
	} else if !strings.HasPrefix(cell, "empty") {
		return false, fmt.Errorf("default %q is neither `value` nor \"empty…\"", cell)
	}
	switch v := s.Value.(type) {
	case time.Duration:
		d, err := time.ParseDuration(text)
		return err == nil && d == v, nil
	case int:
		n, err := strconv.Atoi(text)
		return err == nil && n == v, nil
	case float64:
		f, err := strconv.ParseFloat(text, 64)
		return err == nil && f == v, nil
	default:
		return text == s.Default, nil
	}
}

// checkConfigTable reports where the table and the settings differ: every
// setting has one row with its default, and the table has nothing else.
func checkConfigTable(readme string, settings []config.Setting, read []string) []string {
	rows, err := configTable(readme)
	if err != nil {
		return []string{err.Error()}
	}
	var bad []string
	known := map[string]bool{}
	for _, s := range settings {
		known[s.Env] = true
		cell, ok := rows[s.Env]
		if !ok {
			bad = append(bad, fmt.Sprintf("%s (-%s, default %q) has no row", s.Env, s.Flag, s.Default))
			continue
		}
		same, err := sameDefault(cell, s)
		if err != nil {
			bad = append(bad, s.Env+": "+err.Error())
		} else if !same {
			bad = append(bad, fmt.Sprintf("%s: the table says %s, the code %q", s.Env, cell, s.Default))
		}
	}
	for env := range rows {
		if !known[env] {
			bad = append(bad, env+" is in the table but not a setting")
		}
	}
	for _, env := range read {
		if !known[env] {
			bad = append(bad, env+" is read but has no flag: every setting is a flag and a variable")
		}
	}
	return bad
}

// TestConfigTable: README.md's configuration table lists every CHAT_*
// setting internal/config defines, with its default, and nothing else.
func TestConfigTable(t *testing.T) {
	b, err := os.ReadFile(root + "/README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range checkConfigTable(string(b), config.Settings(), config.EnvNames()) {
		t.Error("README.md configuration table: " + msg)
	}
}

func TestConfigTableChecker(t *testing.T) {
	settings := []config.Setting{
		{Env: "CHAT_A", Flag: "a", Default: "2m0s", Value: 2 * time.Minute},
		{Env: "CHAT_B", Flag: "b", Default: "", Value: ""},
		{Env: "CHAT_C", Flag: "c", Default: "8", Value: 8},
		{Env: "CHAT_D", Flag: "d", Default: "", Value: ""},
	}
	table := func(rows ...string) string {
		return "# x\n\n## Configuration\n\n| variable | meaning | default |\n| --- | --- | --- |\n" + strings.Join(rows, "\n") + "\n\n## Layout\n| `CHAT_Z` | not config | `1` |\n"
	}
	good := table("| `CHAT_A` | a | `2m` |", "| `CHAT_B`, `CHAT_D` | b, d | empty: generated |", "| `CHAT_C` | c | `8` (eight) |")
	if got := checkConfigTable(good, settings, []string{"CHAT_A"}); len(got) != 0 {
		t.Errorf("a true table was refused: %v", got)
	}
	for name, c := range map[string]struct {
		readme string
		read   []string
	}{
		"missing row":   {table("| `CHAT_A` | a | `2m` |", "| `CHAT_B` | b | empty |"), nil},
		"wrong default": {table("| `CHAT_A` | a | `3m` |", "| `CHAT_B` | b | empty |", "| `CHAT_C` | c | `8` |"), nil},
		"extra row":     {table("| `CHAT_A` | a | `2m` |", "| `CHAT_B` | b | empty |", "| `CHAT_C` | c | `8` |", "| `CHAT_D` | d | `1` |"), nil},
		"bare default":  {table("| `CHAT_A` | a | 2m |", "| `CHAT_B` | b | empty |", "| `CHAT_C` | c | `8` |"), nil},
		"no flag":       {table("| `CHAT_A` | a | `2m` |", "| `CHAT_B` | b | empty |", "| `CHAT_C` | c | `8` |"), []string{"CHAT_E"}},
	} {
		if got := checkConfigTable(c.readme, settings[:3], c.read); len(got) != 1 {
			t.Errorf("%s: got %v, want one complaint", name, got)
		}
	}
}
