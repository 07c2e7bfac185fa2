package devdiff

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestWalkHandmade runs without root or a mount: an upper written by hand
// in the user.overlay.* xattr forms, listed and exported to a tar that Go's
// archive/tar reads back.
func TestWalkHandmade(t *testing.T) {
	d := t.TempDir()
	lower, upper := filepath.Join(d, "lower"), filepath.Join(d, "upper")
	write(t, filepath.Join(lower, "etc/keep"), "keep\n", 0o644)
	write(t, filepath.Join(lower, "etc/edit"), "old\n", 0o644)
	write(t, filepath.Join(lower, "etc/mode"), "mode\n", 0o644)
	write(t, filepath.Join(lower, "etc/gone"), "gone\n", 0o644)
	write(t, filepath.Join(lower, "opt/a"), "a\n", 0o644)
	write(t, filepath.Join(lower, "opt/b"), "b\n", 0o644)
	must(t, os.Symlink("keep", filepath.Join(lower, "etc/link")))

	write(t, filepath.Join(upper, "etc/edit"), "new\n", 0o644)
	write(t, filepath.Join(upper, "etc/mode"), "mode\n", 0o600)
	write(t, filepath.Join(upper, "etc/gone"), "", 0o644)
	write(t, filepath.Join(upper, "etc/new"), "new\n", 0o644)
	must(t, os.Symlink("edit", filepath.Join(upper, "etc/link")))
	write(t, filepath.Join(upper, "opt/b"), "b\n", 0o644)
	if err := unix.Lsetxattr(filepath.Join(upper, "etc/gone"), "user.overlay.whiteout", nil, 0); err != nil {
		t.Skipf("the temp directory's filesystem has no user xattrs: %v", err)
	}
	must(t, unix.Lsetxattr(filepath.Join(upper, "opt"), "user.overlay.opaque", []byte("y"), 0))
	must(t, unix.Lsetxattr(filepath.Join(upper, "etc/new"), "user.note", []byte("hi"), 0))

	var list bytes.Buffer
	lister := NewLister(&list, false)
	var tarBuf bytes.Buffer
	tw, err := NewTarWriter(&tarBuf)
	must(t, err)
	must(t, Walk(upper, lower, Options{}, func(c *Change) error {
		if err := lister.Add(c); err != nil {
			return err
		}
		return tw.Add(c)
	}))
	must(t, tw.Close())
	want := "M /etc/edit\nD /etc/gone\nM /etc/link\nm /etc/mode\nA /etc/new\nO /opt\nD /opt/a\n"
	if list.String() != want {
		t.Errorf("listing:\n%s\nwant:\n%s", list.String(), want)
	}

	tr := tar.NewReader(&tarBuf)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		names = append(names, h.Name)
		switch h.Name {
		case "./etc/new":
			if h.PAXRecords["SCHILY.xattr.user.note"] != "hi" {
				t.Errorf("./etc/new: xattrs %v", h.PAXRecords)
			}
		case "./etc/mode":
			if h.Mode != 0o600 {
				t.Errorf("./etc/mode: mode %o", h.Mode)
			}
		case "./etc/link":
			if h.Typeflag != tar.TypeSymlink || h.Linkname != "edit" {
				t.Errorf("./etc/link: %c -> %q", h.Typeflag, h.Linkname)
			}
		case "./" + ManifestName:
			var got []string
			must(t, ReadManifest(tr, func(p string) error { got = append(got, p); return nil }))
			if !slices.Equal(got, []string{"/etc/gone", "/opt/a"}) {
				t.Errorf("manifest %q", got)
			}
		}
		if strings.Contains(h.Name, "overlay") || h.PAXRecords["SCHILY.xattr.user.overlay.opaque"] != "" {
			t.Errorf("%s: overlay bookkeeping exported", h.Name)
		}
	}
	if want := []string{"./etc/edit", "./etc/link", "./etc/mode", "./etc/new", "./opt", "./" + ManifestName}; !slices.Equal(names, want) {
		t.Errorf("tar members %q, want %q", names, want)
	}
}

func TestWalkErrors(t *testing.T) {
	d := t.TempDir()
	file := filepath.Join(d, "file")
	write(t, file, "x", 0o644)
	nop := func(*Change) error { return nil }
	for _, tc := range []struct{ upper, lower, want string }{
		{filepath.Join(d, "missing"), d, "upper " + filepath.Join(d, "missing")},
		{d, filepath.Join(d, "missing"), "lower " + filepath.Join(d, "missing")},
		{file, d, "not a directory"},
		{d, file, "not a directory"},
	} {
		if err := Walk(tc.upper, tc.lower, Options{}, nop); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Walk(%s, %s) = %v, want an error with %q", tc.upper, tc.lower, err, tc.want)
		}
	}
	// The manifest name is reserved at the root of an export.
	lower, upper := filepath.Join(d, "l"), filepath.Join(d, "u")
	must(t, os.Mkdir(lower, 0o755))
	write(t, filepath.Join(upper, ManifestName), "x", 0o644)
	tw, err := NewTarWriter(io.Discard)
	must(t, err)
	if err := Walk(upper, lower, Options{}, tw.Add); err == nil || !strings.Contains(err.Error(), ManifestName) {
		t.Errorf("upper with /%s: %v", ManifestName, err)
	}
}

func TestRemoveDeleted(t *testing.T) {
	d := t.TempDir()
	src, outside := filepath.Join(d, "src"), filepath.Join(d, "outside")
	write(t, filepath.Join(src, "etc/gone"), "x", 0o644)
	write(t, filepath.Join(src, "var/old/a/b"), "x", 0o644)
	write(t, filepath.Join(src, "keep"), "x", 0o644)
	write(t, filepath.Join(outside, "precious"), "x", 0o644)
	must(t, os.Symlink(outside, filepath.Join(src, "escape")))

	n, err := RemoveDeleted(src, strings.NewReader("./etc/gone\x00./var/old\x00./not/there\x00"))
	if err != nil || n != 2 {
		t.Fatalf("RemoveDeleted = %d, %v; want 2, nil", n, err)
	}
	for _, p := range []string{"etc/gone", "var/old"} {
		if _, err := os.Lstat(filepath.Join(src, p)); !os.IsNotExist(err) {
			t.Errorf("%s not removed: %v", p, err)
		}
	}
	// Through a symlink out of the tree: refused, nothing outside touched.
	if _, err := RemoveDeleted(src, strings.NewReader("./escape/precious\x00")); err == nil {
		t.Error("removal through a symlink leaving the tree was not refused")
	}
	// A malformed manifest stops before its bad entry.
	if _, err := RemoveDeleted(src, strings.NewReader("./a/../../outside/precious\x00")); err == nil {
		t.Error("manifest with .. accepted")
	}
	for _, p := range []string{filepath.Join(outside, "precious"), filepath.Join(src, "keep")} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func TestOpenManifest(t *testing.T) {
	d := t.TempDir()
	tarFile := filepath.Join(d, "x.tar")
	f, err := os.Create(tarFile)
	must(t, err)
	tw, err := NewTarWriter(f)
	must(t, err)
	must(t, tw.Add(&Change{Kind: Deleted, Path: "/etc/gone", Info: Info{Type: TypeFile}}))
	must(t, tw.Close())
	must(t, f.Close())
	r, err := OpenManifest(tarFile)
	must(t, err)
	b, err := io.ReadAll(r)
	must(t, err)
	must(t, r.Close())
	if string(b) != "./etc/gone\x00" {
		t.Errorf("manifest from tar: %q", b)
	}
	if _, err := OpenManifest(filepath.Join(d, "missing")); err == nil {
		t.Error("missing export accepted")
	}
	write(t, filepath.Join(d, "plain"), strings.Repeat("x", 1024), 0o644)
	if _, err := OpenManifest(filepath.Join(d, "plain")); err == nil {
		t.Error("a file that is no tar accepted")
	}
}
