package kmodules

import (
	"bytes"
	"testing"
)

// FuzzReadDep feeds modules.dep text to the reader and resolves from it.
func FuzzReadDep(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		tr := &Tree{paths: map[string]string{}, deps: map[string][]string{}, builtin: map[string]bool{}, hasDep: true}
		if err := tr.readDep(bytes.NewReader(b)); err != nil {
			return
		}
		names := make([]string, 0, len(tr.paths))
		for n := range tr.paths {
			names = append(names, n)
		}
		deps, err := tr.Resolve(names)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, d := range deps {
			for _, p := range d.Deps {
				if !seen[p] {
					t.Fatalf("%s comes before its dependency %s", d.Name, p)
				}
			}
			seen[d.Name] = true
		}
		var buf bytes.Buffer
		if err := WriteDep(&buf, deps); err != nil {
			t.Fatal(err)
		}
	})
}
