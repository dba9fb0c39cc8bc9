package events

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// One wording per error: a message text given to events.Errorf or WrapError in two
// packages, or a membership refusal worded outside this package, drifts
// apart sooner or later (it did: "not a member" was worded three ways).
// Such errors get a constructor in messages.go instead.
func TestOneWordingPerError(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		inHere := filepath.Dir(rel) == "events"
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkg, _ := sel.X.(*ast.Ident)
			arg := -1
			switch {
			case (pkg != nil && pkg.Name == "events" || inHere && pkg == nil) && sel.Sel.Name == "Errorf":
				arg = 1
			case (pkg != nil && pkg.Name == "events" || inHere && pkg == nil) && sel.Sel.Name == "WrapError":
				arg = 2
			}
			if arg < 0 || len(call.Args) <= arg {
				return true
			}
			lit, ok := call.Args[arg].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			msg, _ := strconv.Unquote(lit.Value)
			if msg == "%s" {
				return true // a message built elsewhere
			}
			at := fset.Position(lit.Pos()).String()
			if strings.Contains(msg, "not a member of") && !inHere {
				t.Errorf("%s: %q: use events.NotMember", at, msg)
			}
			// Repeats inside one package are one home (the package that
			// owns the error); across packages they are two.
			if prev, ok := seen[msg]; ok && filepath.Dir(prev) != filepath.Dir(at) {
				t.Errorf("%s: %q is also worded at %s; give it a constructor in messages.go", at, msg, prev)
			}
			seen[msg] = at
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) < 20 {
		t.Fatalf("found only %d messages: is the walk looking at the repository?", len(seen))
	}
}
