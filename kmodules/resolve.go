// Package kmodules resolves kernel module dependencies and loads modules.
//
// The host-side initramfs builder uses Resolve to copy exactly the .ko files
// a board needs (and WriteDep to write their modules.dep); /init uses Load.
// Module names treat '-' and '_' as the same character, as the kernel does.
package kmodules

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// MaxModuleSize bounds one (decompressed) module file.
const MaxModuleSize = 64 << 20

// moduleExts are the module file suffixes understood, plain first.
var moduleExts = []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"}

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

// tree indexes one module root.
type tree struct {
	root    string
	paths   map[string]string   // name → relative path
	deps    map[string][]string // name → direct dependency names (from modules.dep)
	hasDep  bool
	builtin map[string]bool
}

func openTree(root string) (*tree, error) {
	t := &tree{root: root, paths: map[string]string{}, deps: map[string][]string{}, builtin: map[string]bool{}}
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

func (t *tree) readBuiltin() error {
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
func (t *tree) readDep(r io.Reader) error {
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
func (t *tree) depsOf(name string) ([]string, error) {
	if t.hasDep {
		return t.deps[name], nil
	}
	info, err := ReadModinfo(filepath.Join(t.root, filepath.FromSlash(t.paths[name])))
	if err != nil {
		return nil, err
	}
	var ds []string
	for _, d := range strings.Split(info["depends"], ",") {
		if d = strings.TrimSpace(d); d != "" {
			ds = append(ds, Name(d))
		}
	}
	return ds, nil
}

// ResolveDeps computes the dependency closure of names under the module
// root modRoot (the directory holding modules.dep or kernel/), in load
// order: every module after the modules it needs. Built-in modules
// (modules.builtin) are satisfied and left out. A module that is neither
// present nor built in is an error naming it.
func ResolveDeps(modRoot string, names []string) ([]Dep, error) {
	t, err := openTree(modRoot)
	if err != nil {
		return nil, fmt.Errorf("modules in %s: %w", modRoot, err)
	}
	return t.resolve(names)
}

func (t *tree) resolve(names []string) ([]Dep, error) {
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
	ps := make([]string, len(ds))
	for i, d := range ds {
		ps[i] = d.Path
	}
	return ps, nil
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

// ReadModinfo reads a module file's .modinfo section (key=value strings),
// decompressing .xz/.zst/.gz files. It works for modules of any
// architecture.
func ReadModinfo(path string) (map[string]string, error) {
	img, err := readModule(path)
	if err != nil {
		return nil, err
	}
	return parseModinfo(img)
}

func parseModinfo(img []byte) (info map[string]string, err error) {
	// debug/elf has panicked on hostile files before; a bad module is an
	// error, not a crash.
	defer func() {
		if r := recover(); r != nil {
			info, err = nil, fmt.Errorf("malformed ELF file (%v)", r)
		}
	}()
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		return nil, err
	}
	s := f.Section(".modinfo")
	if s == nil {
		return nil, errors.New("no .modinfo section")
	}
	if s.Size > uint64(len(img)) {
		return nil, errors.New(".modinfo section larger than the file")
	}
	data, err := s.Data()
	if err != nil {
		return nil, fmt.Errorf(".modinfo: %w", err)
	}
	info = map[string]string{}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok {
			if _, dup := info[k]; !dup {
				info[k] = v
			}
		}
	}
	return info, nil
}

// readModule reads a module file, decompressing by suffix.
func readModule(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	switch {
	case strings.HasSuffix(path, ".xz"):
		xr, err := xz.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r = xr
	case strings.HasSuffix(path, ".zst"):
		zr, err := zstd.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	case strings.HasSuffix(path, ".gz"):
		gr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r = gr
	}
	b, err := io.ReadAll(io.LimitReader(r, MaxModuleSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > MaxModuleSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, MaxModuleSize)
	}
	return b, nil
}
