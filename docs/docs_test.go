package docs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// root is the repository's top directory (this package lives in docs/).
const root = ".."

// trackedFiles lists the repository's files: git's index when there is one,
// otherwise every file under root (a tarball of the repository).
func trackedFiles(t *testing.T) []string {
	t.Helper()
	if out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output(); err == nil && len(out) > 0 {
		var files []string
		for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
			if _, err := os.Stat(filepath.Join(root, f)); err == nil { // deleted but not staged: skip
				files = append(files, f)
			}
		}
		return files
	}
	var files []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "data") {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// outsideRefs are names of documents that live outside the repository:
// a clone must read as complete without them.
var outsideRefs = []string{".." + "/shared", "PROTOCOL" + ".md", "ARCHITECTURE" + ".md"}

// issueRef is a citation of the tracker's issues, which a reader of the
// repository does not have.
var issueRef = regexp.MustCompile(`(?i)\bissues? #?[0-9]+\b|closing notes`)

// standsAlone reports each line of content that points outside the
// repository.
func standsAlone(name string, content []byte) []string {
	var bad []string
	for i, line := range strings.Split(string(content), "\n") {
		for _, ref := range outsideRefs {
			if strings.Contains(line, ref) {
				bad = append(bad, name+":"+strconv.Itoa(i+1)+": mentions "+ref)
			}
		}
		if strings.HasSuffix(name, ".md") && issueRef.MatchString(line) {
			bad = append(bad, name+":"+strconv.Itoa(i+1)+": cites the issue tracker: "+issueRef.FindString(line))
		}
	}
	return bad
}

// TestStandsAlone: nothing in the repository points at documents outside it.
func TestStandsAlone(t *testing.T) {
	for _, f := range trackedFiles(t) {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.IndexByte(b, 0) >= 0 {
			continue // binary
		}
		for _, msg := range standsAlone(f, b) {
			t.Error(msg)
		}
	}
}

func TestStandsAloneChecker(t *testing.T) {
	for _, bad := range []string{"see ../" + "shared/PROTOCOL" + ".md", "as " + "ARCHITECTURE" + ".md says"} {
		if len(standsAlone("x.go", []byte(bad))) == 0 {
			t.Errorf("%q passed", bad)
		}
	}
	if len(standsAlone("x.md", []byte("how it meets issue 7"))) == 0 {
		t.Error("an issue citation passed")
	}
	if got := standsAlone("x.md", []byte("see docs/protocol.md and architecture.md")); len(got) != 0 {
		t.Errorf("the project's own docs were refused: %v", got)
	}
}

// mdLink is a Markdown link or image target: [text](target).
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// slug is the anchor GitHub gives a heading.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors returns the heading anchors of a Markdown file.
func anchors(content []byte) map[string]bool {
	out := map[string]bool{}
	inCode := false
	for _, line := range strings.Split(string(content), "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		s := slug(strings.TrimLeft(line, "#"))
		for i := 1; out[s]; i++ { // GitHub numbers repeated headings
			s = strings.TrimSuffix(s, "-"+strconv.Itoa(i-1)) + "-" + strconv.Itoa(i)
		}
		out[s] = true
	}
	return out
}

// brokenLinks reports the relative links of a Markdown file whose file or
// heading does not exist.
func brokenLinks(dir, name string, content []byte, read func(string) ([]byte, error)) []string {
	var bad []string
	for _, m := range mdLink.FindAllSubmatch(content, -1) {
		target := string(m[1])
		if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
			continue
		}
		file, anchor, _ := strings.Cut(target, "#")
		other := content
		if file != "" {
			b, err := read(filepath.Join(dir, file))
			if err != nil {
				bad = append(bad, name+": link to missing "+target)
				continue
			}
			other = b
		}
		if anchor != "" && strings.HasSuffix(file, ".md") || anchor != "" && file == "" {
			if !anchors(other)[anchor] {
				bad = append(bad, name+": link to missing heading "+target)
			}
		}
	}
	return bad
}

// TestLinks: every relative link in the Markdown files leads somewhere.
func TestLinks(t *testing.T) {
	for _, f := range trackedFiles(t) {
		if !strings.HasSuffix(f, ".md") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		read := func(p string) ([]byte, error) {
			st, err := os.Stat(filepath.Join(root, p))
			if err == nil && st.IsDir() {
				return nil, nil
			}
			return os.ReadFile(filepath.Join(root, p))
		}
		for _, msg := range brokenLinks(filepath.Dir(f), f, b, read) {
			t.Error(msg)
		}
	}
}

func TestLinksChecker(t *testing.T) {
	files := map[string]string{"a.md": "# Top\n## The path: of one (message)\nsee [b](b.md#there) and [here](#the-path-of-one-message)\n", "b.md": "## There\n"}
	read := func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, os.ErrNotExist
	}
	if got := brokenLinks(".", "a.md", []byte(files["a.md"]), read); len(got) != 0 {
		t.Errorf("good links refused: %v", got)
	}
	for _, bad := range []string{"[x](c.md)", "[x](b.md#nowhere)", "[x](#nowhere)"} {
		if len(brokenLinks(".", "a.md", []byte(bad), read)) == 0 {
			t.Errorf("%s passed", bad)
		}
	}
}

// recipe returns the commands of a Makefile target (its tab-indented lines).
func recipe(makefile, target string) []string {
	var out []string
	in := false
	for _, line := range strings.Split(makefile, "\n") {
		switch {
		case strings.HasPrefix(line, target+":"):
			in = true
		case in && strings.HasPrefix(line, "\t"):
			out = append(out, strings.TrimPrefix(strings.TrimPrefix(line, "\t"), "@"))
		case in:
			return out
		}
	}
	return out
}

// TestReadmeShowsMakeTest: the test command README.md shows is the one
// `make test` (and so .ci/run) runs.
func TestReadmeShowsMakeTest(t *testing.T) {
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	cmds := recipe(string(mk), "test")
	if len(cmds) == 0 {
		t.Fatal("Makefile has no test recipe")
	}
	last := cmds[len(cmds)-1] // the ones before bring up services
	if !strings.Contains(string(readme), "\n    "+last+"\n") {
		t.Errorf("README.md does not show what make test runs: %s", last)
	}
	if got := recipe("x:\n\tno\ntest: a\n\t@one\n\ttwo\n\ny:\n\tno\n", "test"); strings.Join(got, ";") != "one;two" {
		t.Errorf("recipe = %q", got)
	}
}
