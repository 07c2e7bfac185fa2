package initramfs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// SourceID digests the parts of the mcinit source tree at dir that can
// change a device payload: go.mod, go.sum, every non-test .go file and the
// embedded board files, outside testdata/, e2e/, bench/, docs/ and out/.
// A payload directory records it (DIR/<arch>/source) so a stale payload is
// never packed.
func SourceID(dir string) (string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			switch d.Name() {
			case ".git", "testdata", "out", "e2e", "bench", "docs", "scripts":
				return filepath.SkipDir
			}
			return nil
		}
		name := d.Name()
		switch {
		case rel == "go.mod" || rel == "go.sum":
		case strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go"):
		case strings.HasPrefix(rel, "boards"+string(filepath.Separator)) && strings.HasSuffix(name, ".toml"):
		default:
			return nil
		}
		if d.Type().IsRegular() {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("initramfs: source tree: %w", err)
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return "", fmt.Errorf("initramfs: source tree: %w", err)
		}
		s := sha256.Sum256(b)
		fmt.Fprintf(h, "%s\x00%x\n", filepath.ToSlash(f), s)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
