package docs

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	godoc "go/doc"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated parts of the docs")

const (
	diagramDoc   = "architecture.md"
	diagramBegin = "<!-- packages: begin (generated from `go list` by `go test ./docs -run TestPackageDiagram -update`) -->"
	diagramEnd   = "<!-- packages: end -->"
)

type goPackage struct {
	ImportPath string
	Doc        string
	Imports    []string
}

// modulePackages lists the module's packages with their imports inside the
// module, as `go list` sees them; the test suites under tests/ are left out
// (they are not part of the program).
func modulePackages(t *testing.T) (module string, pkgs []goPackage) {
	t.Helper()
	out, err := exec.Command("go", "list", "-m").Output()
	if err != nil {
		t.Skipf("go list -m: %v", err)
	}
	module = strings.TrimSpace(string(out))
	cmd := exec.Command("go", "list", "-json=ImportPath,Doc,Imports", "./...")
	cmd.Dir = root
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p goPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("go list output: %v", err)
		}
		p.ImportPath = strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		if p.ImportPath == "tests" || strings.HasPrefix(p.ImportPath, "tests/") {
			continue
		}
		var own []string
		for _, imp := range p.Imports {
			if rel, ok := strings.CutPrefix(imp, module+"/"); ok {
				own = append(own, rel)
			}
		}
		sort.Strings(own)
		p.Imports = own
		pkgs = append(pkgs, p)
	}
	return module, pkgs
}

// packageDiagram renders the packages as a Mermaid graph (GitHub draws it)
// and as a table of what each is for and what it imports. Edges into events
// are left out of the graph: nearly every package uses the domain types,
// and drawing them hides the arrows that say something.
func packageDiagram(pkgs []goPackage) string {
	var b strings.Builder
	b.WriteString("```mermaid\ngraph LR\n")
	for _, p := range pkgs {
		for _, imp := range p.Imports {
			if imp == "events" {
				continue
			}
			fmt.Fprintf(&b, "  %s --> %s\n", mermaidID(p.ImportPath), mermaidID(imp))
		}
	}
	b.WriteString("```\n\n| package | what it is for | imports (of this module) |\n| --- | --- | --- |\n")
	for _, p := range pkgs {
		doc := strings.ReplaceAll(new(godoc.Package).Synopsis(p.Doc), "|", "\\|")
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", p.ImportPath, doc, strings.Join(p.Imports, ", "))
	}
	return b.String()
}

// mermaidID names a node: the package path, quoted as a label so that the
// slashes survive.
func mermaidID(path string) string {
	id := strings.NewReplacer("/", "_", ".", "_", "-", "_").Replace(path)
	return fmt.Sprintf("%s[%s]", id, path)
}

// TestPackageDiagram keeps architecture.md's package diagram equal to what
// `go list` says the packages and their imports are: a moved or new package,
// or a new import between them, fails here until the diagram is regenerated
// (and read: an arrow that crosses the flow is worth a second look).
func TestPackageDiagram(t *testing.T) {
	_, pkgs := modulePackages(t)
	for _, p := range pkgs {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("package %s has no package doc comment saying what it is for", p.ImportPath)
		}
	}
	for _, p := range pkgs {
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, "internal/projector/") && p.ImportPath != "internal/wiring" &&
				!strings.HasPrefix(p.ImportPath, "internal/projector/") {
				// The projectors are leaves of the flow: they read TIMELINE and
				// write stores. A role that imports one has taken a shortcut.
				t.Errorf("%s imports the projector %s; only internal/wiring may", p.ImportPath, imp)
			}
		}
	}
	want := packageDiagram(pkgs)
	path := filepath.Join(root, "docs", diagramDoc)
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	i, j := strings.Index(text, diagramBegin), strings.Index(text, diagramEnd)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the generated package diagram between %q and %q", diagramDoc, diagramBegin, diagramEnd)
	}
	got := strings.TrimSpace(text[i+len(diagramBegin) : j])
	if got == strings.TrimSpace(want) {
		return
	}
	if *update {
		text = text[:i+len(diagramBegin)] + "\n\n" + want + "\n" + text[j:]
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("docs/%s's package diagram differs from `go list`; run `go test ./docs -run TestPackageDiagram -update` and read the change", diagramDoc)
}
