package kmodules

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/mcinit/mcinit/boards"
)

// Loader inserts one module file with its parameters. It returns nil when
// the module is loaded, including when it already was.
type Loader func(path, params string) error

// Load loads the board's modules and their dependencies from modRoot (in
// /init: /lib/modules/<release>). A module starts loading as soon as every
// module it needs has loaded, so independent modules load in parallel
// (module init, not file reading, is most of the time). Parameters apply
// to the listed modules only. Built-in and already-loaded modules are
// fine; a missing module is an error naming it, and a failed module keeps
// its dependents from being tried.
func Load(modRoot string, mods []boards.Module) error {
	return LoadWith(modRoot, mods, InsertFile)
}

// LoadWith is Load with the insertion done by load (tests use it to check
// ordering without a kernel).
func LoadWith(modRoot string, mods []boards.Module, load Loader) error {
	names := make([]string, len(mods))
	params := map[string]string{}
	for i, m := range mods {
		names[i] = m.Name
		params[Name(m.Name)] = m.Params
	}
	deps, err := ResolveDeps(modRoot, names)
	if err != nil {
		return err
	}
	return loadGraph(deps, func(d Dep) error {
		return load(filepath.Join(modRoot, filepath.FromSlash(d.Path)), params[d.Name])
	})
}

// loadGraph runs load for every module once all of its dependencies
// succeeded. deps is in dependency order (as ResolveDeps returns it).
func loadGraph(deps []Dep, load func(Dep) error) error {
	done := make(map[string]chan struct{}, len(deps))
	failed := make(map[string]bool, len(deps))
	for _, d := range deps {
		done[d.Name] = make(chan struct{})
	}
	var (
		mu      sync.Mutex
		errs    []string
		skipped []string
		wg      sync.WaitGroup
	)
	for _, d := range deps {
		wg.Add(1)
		go func(d Dep) {
			defer wg.Done()
			defer close(done[d.Name])
			for _, p := range d.Deps {
				if ch, ok := done[p]; ok {
					<-ch
				}
			}
			mu.Lock()
			var blocked []string
			for _, p := range d.Deps {
				if failed[p] {
					blocked = append(blocked, p)
				}
			}
			if len(blocked) > 0 {
				failed[d.Name] = true
				skipped = append(skipped, d.Name)
				mu.Unlock()
				return // the failed dependency's own error says why
			}
			mu.Unlock()
			if err := load(d); err != nil {
				mu.Lock()
				failed[d.Name] = true
				errs = append(errs, fmt.Sprintf("module %s: %v", d.Name, err))
				mu.Unlock()
			}
		}(d)
	}
	wg.Wait()
	if len(errs) > 0 {
		sort.Strings(errs)
		if len(skipped) > 0 {
			sort.Strings(skipped)
			errs = append(errs, "not loaded for want of a dependency: "+strings.Join(skipped, ", "))
		}
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// InsertFile loads one module file into the running kernel with
// finit_module, for every file: the kernel reads the file itself, so
// LoadPin and IMA see (and can refuse) the very file loaded, never a copy
// made in user space. A compressed .ko.xz/.ko.zst/.ko.gz is handed over
// with MODULE_INIT_COMPRESSED_FILE for the kernel to decompress (Linux ≥
// 5.17 with CONFIG_MODULE_DECOMPRESS); `mcinit initramfs` stores modules
// uncompressed, so /init needs no decompressor. EEXIST (already loaded) is
// success.
func InsertFile(path, params string) error {
	flags, compressed := insertFlags(path)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	err = unix.FinitModule(fd, params, flags)
	unix.Close(fd)
	switch {
	case err == nil, errors.Is(err, unix.EEXIST):
		return nil
	case compressed:
		return fmt.Errorf("loading %s: the kernel could not load this compressed module (it needs Linux 5.17+ built with CONFIG_MODULE_DECOMPRESS and the matching decompressor; mcinit initramfs stores modules uncompressed): %w", filepath.Base(path), err)
	default:
		return fmt.Errorf("loading %s: %w", filepath.Base(path), err)
	}
}

// insertFlags gives the finit_module flags for a module file, and whether
// the file is compressed (by its name, as kmod decides too).
func insertFlags(path string) (flags int, compressed bool) {
	if Compression(path) != "" {
		return unix.MODULE_INIT_COMPRESSED_FILE, true
	}
	return 0, false
}
