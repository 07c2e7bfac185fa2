package boot

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/dmverity"
	"github.com/mcinit/mcinit/policy"
)

// TestNoArrowFromMechanismToDecision: the packages that do things (measure,
// mount, map, load, read) import none of the packages that decide (the
// policy schema, the decision, this pipeline). The decision side passes
// them plain values.
func TestNoArrowFromMechanismToDecision(t *testing.T) {
	mechanisms := []string{"measure", "tpmdev", "tpmdev/swtpm", "dmverity", "rootfs", "rollback", "kmodules", "kmodules/modinfo", "handoff", "early", "verity", "mkfs", "identity", "cmdline", "signing", "internal/stricttoml", "internal/boundedfile", "grantpart"}
	decisions := []string{"policy", "decide", "boot"}
	for _, m := range mechanisms {
		files, err := filepath.Glob(filepath.Join("..", m, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("package %s: no files (%v)", m, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				for _, d := range decisions {
					if path == "github.com/mcinit/mcinit/"+d {
						t.Errorf("%s imports %s", f, path)
					}
				}
			}
		}
	}
}

// TestVerityErrorNames: every verity_error the policy accepts is a
// reaction dmverity knows (the two packages share the names, not a type).
func TestVerityErrorNames(t *testing.T) {
	for _, v := range []policy.VerityError{policy.VerityRestart, policy.VerityPanic, policy.VerityEIO, ""} {
		if _, err := dmverity.OnCorruption(v).Params(); err != nil {
			t.Errorf("verity_error %q: %v", v, err)
		}
	}
}
