package initramfs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// TestRescueCommandsPinned: every u-root command the device builder names
// as a string (device.RescueCommands) is blank-imported by the tools file
// (internal/tools, build tag tools), and nothing else is. `go mod tidy`
// sees only imports: a command missing there would have its modules
// dropped from go.mod and the rescue build would fail. Both files are read
// as source, so this test does not link the device builder.
func TestRescueCommandsPinned(t *testing.T) {
	root := repoRoot(t)
	fset := token.NewFileSet()
	dev, err := parser.ParseFile(fset, filepath.Join(root, "initramfs/device/device.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var named []string
	ast.Inspect(dev, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || vs.Names[0].Name != "RescueCommands" || len(vs.Values) != 1 {
			return true
		}
		lit, ok := vs.Values[0].(*ast.CompositeLit)
		if !ok {
			t.Fatal("RescueCommands is not a literal")
		}
		for _, e := range lit.Elts {
			bl, ok := e.(*ast.BasicLit)
			if !ok {
				t.Fatalf("RescueCommands element %T is not a string literal", e)
			}
			s, _ := strconv.Unquote(bl.Value)
			named = append(named, s)
		}
		return false
	})
	if len(named) == 0 {
		t.Fatal("no RescueCommands found in initramfs/device/device.go")
	}
	tools, err := parser.ParseFile(fset, filepath.Join(root, "internal/tools/tools.go"), nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	var pinned []string
	for _, imp := range tools.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		pinned = append(pinned, p)
	}
	slices.Sort(named)
	slices.Sort(pinned)
	if !slices.Equal(named, pinned) {
		t.Errorf("internal/tools imports\n%q\nbut device.RescueCommands names\n%q", pinned, named)
	}
}
