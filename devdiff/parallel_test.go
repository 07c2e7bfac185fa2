package devdiff

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestWalkWideOrder checks the parallel walk keeps the order and the
// results of a sequential one: directories much wider than the workers'
// lookahead, subdirectories among the files (so a subdirectory is walked
// while its parent's later names are being prepared), and every kind of
// content result.
func TestWalkWideOrder(t *testing.T) {
	d := t.TempDir()
	lower, upper := filepath.Join(d, "lower"), filepath.Join(d, "upper")
	var want []string
	for _, top := range []string{"a", "b", "c"} {
		for i := range 3 * lookahead {
			name := fmt.Sprintf("%s/f%03d", top, i)
			if i%50 == 25 {
				// A subdirectory among the files, itself wide.
				sub := fmt.Sprintf("%s/f%03d", top, i)
				must(t, os.MkdirAll(filepath.Join(upper, sub), 0o755))
				want = append(want, "A /"+sub)
				for j := range lookahead + 3 {
					write(t, filepath.Join(upper, sub, fmt.Sprintf("g%03d", j)), "x", 0o644)
					want = append(want, fmt.Sprintf("A /%s/g%03d", sub, j))
				}
				continue
			}
			content := fmt.Sprintf("content %d\n", i)
			write(t, filepath.Join(lower, name), content, 0o644)
			switch i % 4 {
			case 0: // unchanged copy-up
				write(t, filepath.Join(upper, name), content, 0o644)
			case 1: // same size, other bytes: only reading tells
				write(t, filepath.Join(upper, name), strings.ToUpper(content), 0o644)
				want = append(want, "M /"+name)
			case 2: // other size
				write(t, filepath.Join(upper, name), content+"more", 0o644)
				want = append(want, "M /"+name)
			case 3: // mode only
				write(t, filepath.Join(upper, name), content, 0o600)
				want = append(want, "m /"+name)
			}
		}
	}
	var got bytes.Buffer
	l := NewLister(&got, false)
	must(t, Walk(upper, lower, Options{}, l.Add))
	lines := strings.Split(strings.TrimSuffix(got.String(), "\n"), "\n")
	if !slices.Equal(lines, want) {
		t.Errorf("listing differs from the sequential expectation: %d lines, want %d", len(lines), len(want))
		for i := range min(len(lines), len(want)) {
			if lines[i] != want[i] {
				t.Fatalf("first difference at line %d: %q, want %q", i, lines[i], want[i])
			}
		}
	}

	// fn's error stops the walk: nothing is reported after it, even with
	// later names already prepared.
	errStop := errors.New("stop")
	n := 0
	err := Walk(upper, lower, Options{}, func(c *Change) error {
		n++
		if n == 100 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) || n != 100 {
		t.Errorf("Walk after fn's error: %v, fn called %d times, want stop after 100", err, n)
	}
}

// TestListXattrsFallback: listxattrat(2) and the llistxattr(2) fallback
// give the same names, and neither follows a symlink to its target.
func TestListXattrsFallback(t *testing.T) {
	d := t.TempDir()
	write(t, filepath.Join(d, "file"), "x", 0o644)
	if err := unix.Lsetxattr(filepath.Join(d, "file"), "user.a", []byte("1"), 0); err != nil {
		t.Skipf("the temp directory's filesystem has no user xattrs: %v", err)
	}
	must(t, unix.Lsetxattr(filepath.Join(d, "file"), "user.b", []byte("2"), 0))
	must(t, os.Symlink("file", filepath.Join(d, "link")))
	dir, err := os.Open(d)
	must(t, err)
	defer dir.Close()
	fd := int(dir.Fd())
	for _, fallback := range []bool{false, true} {
		var w walker
		w.noListxattrat.Store(fallback)
		xs, err := w.readXattrs(fd, "file", filepath.Join(d, "file"))
		must(t, err)
		xs = ownXattrs(xs) // sorted
		if len(xs) != 2 || xs[0].Name != "user.a" || string(xs[1].Value) != "2" {
			t.Errorf("fallback %v: file xattrs %v", fallback, xs)
		}
		xs, err = w.readXattrs(fd, "link", filepath.Join(d, "link"))
		must(t, err)
		if len(xs) != 0 {
			t.Errorf("fallback %v: the symlink shows its target's xattrs %v", fallback, xs)
		}
		if _, err := w.readXattrs(fd, "missing", filepath.Join(d, "missing")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("fallback %v: missing entry: %v", fallback, err)
		}
	}
}
