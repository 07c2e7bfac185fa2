// Package kmodules resolves kernel module dependencies and loads modules.
//
// The host-side initramfs builder resolves exactly the .ko files a board
// needs (and WriteDep writes their modules.dep); /init uses Load. Module
// names treat '-' and '_' as the same character, as the kernel does.
//
// This package is linked into /init, so it reads no module file itself:
// reading .modinfo and decompressing modules is package kmodules/modinfo's
// job, on the host.
package kmodules

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// MaxModuleSize bounds one (decompressed) module file.
const MaxModuleSize = 64 << 20

// moduleExts are the module file suffixes understood, plain first.
var moduleExts = []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"}

// Compression is a module file's compression suffix after ".ko" (".xz",
// ".zst" or ".gz"), "" for a plain .ko or any other name. It is the one
// list of compressed module files, for /init (which hands them to the
// kernel) and the host (which decompresses them, kmodules/modinfo).
func Compression(path string) string {
	for _, ext := range moduleExts[1:] {
		if strings.HasSuffix(path, ext) {
			return strings.TrimPrefix(ext, ".ko")
		}
	}
	return ""
}

// Name gives the kernel's spelling of a module name: '-' becomes '_'.
func Name(s string) string { return strings.ReplaceAll(s, "-", "_") }

// nameOf is the module name of a module file path.
func nameOf(p string) (string, bool) {
	base := filepath.Base(p)
	for _, ext := range moduleExts {
		if strings.HasSuffix(base, ext) {
			return Name(strings.TrimSuffix(base, ext)), true
		}
	}
	return "", false
}

// Dep is one module of a resolved closure.
type Dep struct {
	Name string   // kernel spelling (underscores)
	Path string   // relative to the module root, slash-separated
	Deps []string // names of the modules it needs directly
}

// Tree indexes one module root (lib/modules/<release>): which modules
// exist, which are built in, and what each needs. Reuse one Tree to
// resolve several module lists against the same kernel. A Tree is not safe
// for concurrent use.
type Tree struct {
	root    string
	paths   map[string]string   // name → relative path
	deps    map[string][]string // name → dependency names (modules.dep, or .modinfo once read)
	hasDep  bool
	builtin map[string]bool
	modinfo ModinfoReader // nil: a tree without modules.dep cannot resolve
}

// ModinfoReader reads the .modinfo key=value pairs of a module file (the
// host's is modinfo.Read).
type ModinfoReader func(path string) (map[string]string, error)

// Open indexes the module root modRoot (the directory holding modules.dep
// or kernel/) from its modules.dep. A root without one (dpkg -x leaves
// none) is indexed by listing its module files, but resolving in it needs
// the modules' .modinfo: use OpenWith, or on the host modinfo.Open.
func Open(modRoot string) (*Tree, error) {
	return OpenWith(modRoot, nil)
}

// OpenWith is Open with readModinfo to learn a module's dependencies when
// modRoot has no modules.dep; it is called when a module is first needed.
func OpenWith(modRoot string, readModinfo ModinfoReader) (*Tree, error) {
	t, err := openTree(modRoot, readModinfo)
	if err != nil {
		return nil, fmt.Errorf("modules in %s: %w", modRoot, err)
	}
	return t, nil
}

func openTree(root string, readModinfo ModinfoReader) (*Tree, error) {
	t := &Tree{root: root, paths: map[string]string{}, deps: map[string][]string{}, builtin: map[string]bool{}, modinfo: readModinfo}
	if err := t.readBuiltin(); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(root, "modules.dep"))
	switch {
	case err == nil:
		defer f.Close()
		t.hasDep = true
		return t, t.readDep(f)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	// No modules.dep (dpkg -x leaves none): index the files, read each
	// needed module's .modinfo later.
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if n, ok := nameOf(p); ok {
			rel, _ := filepath.Rel(root, p)
			if _, dup := t.paths[n]; !dup {
				t.paths[n] = filepath.ToSlash(rel)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("indexing modules: %w", err)
	}
	return t, nil
}

func (t *Tree) readBuiltin() error {
	b, err := os.ReadFile(filepath.Join(t.root, "modules.builtin"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if n, ok := nameOf(strings.TrimSpace(line)); ok {
			t.builtin[n] = true
		}
	}
	return nil
}

// readDep reads depmod's format: "path: dep dep ...", where the dependency
// list is the transitive closure; direct and indirect are not told apart,
// which only adds edges that are true anyway.
func (t *Tree) readDep(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for ln := 1; sc.Scan(); ln++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p, rest, ok := strings.Cut(line, ":")
		n, okName := nameOf(p)
		if !ok || !okName {
			return fmt.Errorf("modules.dep line %d: not \"module.ko: deps\"", ln)
		}
		t.paths[n] = strings.TrimPrefix(p, "/")
		var ds []string
		for _, d := range strings.Fields(rest) {
			dn, ok := nameOf(d)
			if !ok {
				return fmt.Errorf("modules.dep line %d: %q is not a module file", ln, d)
			}
			ds = append(ds, dn)
		}
		t.deps[n] = ds
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("modules.dep: %w", err)
	}
	return nil
}

// depsOf gives a module's direct dependencies.
func (t *Tree) depsOf(name string) ([]string, error) {
	if ds, ok := t.deps[name]; ok || t.hasDep {
		return ds, nil
	}
	if t.modinfo == nil {
		return nil, errors.New("no modules.dep in the module root, and no .modinfo reader to learn dependencies from")
	}
	info, err := t.modinfo(filepath.Join(t.root, filepath.FromSlash(t.paths[name])))
	if err != nil {
		return nil, err
	}
	var ds []string
	for _, d := range strings.Split(info["depends"], ",") {
		if d = strings.TrimSpace(d); d != "" {
			ds = append(ds, Name(d))
		}
	}
	t.deps[name] = ds
	return ds, nil
}

// ResolveDeps computes the dependency closure of names under the module
// root modRoot (the directory holding modules.dep; see Open), in load
// order: every module after the modules it needs. Built-in modules
// (modules.builtin) are satisfied and left out. A module that is neither
// present nor built in is an error naming it.
func ResolveDeps(modRoot string, names []string) ([]Dep, error) {
	t, err := Open(modRoot)
	if err != nil {
		return nil, err
	}
	return t.Resolve(names)
}

// Resolve computes the dependency closure of names in load order; see
// ResolveDeps.
func (t *Tree) Resolve(names []string) ([]Dep, error) {
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var out []Dep
	var visit func(n, from string) error
	visit = func(n, from string) error {
		switch state[n] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("module %s: dependency cycle through %s", n, from)
		}
		if _, ok := t.paths[n]; !ok {
			if t.builtin[n] {
				state[n] = done
				return nil
			}
			if from != "" {
				return fmt.Errorf("module %s (needed by %s): not found", n, from)
			}
			return fmt.Errorf("module %s: not found", n)
		}
		state[n] = visiting
		ds, err := t.depsOf(n)
		if err != nil {
			return fmt.Errorf("module %s: %w", n, err)
		}
		var direct []string
		for _, d := range ds {
			if err := visit(d, n); err != nil {
				return err
			}
			if _, ok := t.paths[d]; ok {
				direct = append(direct, d)
			}
		}
		state[n] = done
		out = append(out, Dep{Name: n, Path: t.paths[n], Deps: direct})
		return nil
	}
	for _, n := range names {
		if err := visit(Name(n), ""); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Resolve is ResolveDeps giving only the module file paths, relative to
// modRoot, dependencies first.
func Resolve(modRoot string, names []string) ([]string, error) {
	ds, err := ResolveDeps(modRoot, names)
	if err != nil {
		return nil, err
	}
	return Paths(ds), nil
}

// Paths lists the module file paths of a closure, in order.
func Paths(deps []Dep) []string {
	ps := make([]string, len(deps))
	for i, d := range deps {
		ps[i] = d.Path
	}
	return ps
}

// WriteDep writes a modules.dep for a resolved closure in depmod's format
// (each line lists the module's transitive dependencies, the one to load
// first last), sorted by path, so kmod, u-root's kmodule and Load all read
// it.
func WriteDep(w io.Writer, deps []Dep) error {
	byName := map[string]Dep{}
	for _, d := range deps {
		byName[d.Name] = d
	}
	lines := make([]string, 0, len(deps))
	for _, d := range deps {
		var order []string // transitive deps, load order
		seen := map[string]bool{}
		var walk func(n string)
		walk = func(n string) {
			for _, c := range byName[n].Deps {
				if !seen[c] {
					seen[c] = true
					walk(c)
					order = append(order, byName[c].Path)
				}
			}
		}
		walk(d.Name)
		for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
			order[i], order[j] = order[j], order[i]
		}
		line := d.Path + ":"
		if len(order) > 0 {
			line += " " + strings.Join(order, " ")
		}
		lines = append(lines, line)
	}
	sort.Strings(lines)
	for _, l := range lines {
		if _, err := io.WriteString(w, l+"\n"); err != nil {
			return err
		}
	}
	return nil
}
