package devdiff

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// layers is one overlay set up in a temp dir.
type layers struct{ lower, upper, work, merged string }

func newLayers(t *testing.T) layers {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounting overlayfs, chown and trusted.* xattrs need CAP_SYS_ADMIN")
	}
	d := t.TempDir()
	l := layers{filepath.Join(d, "lower"), filepath.Join(d, "upper"), filepath.Join(d, "work"), filepath.Join(d, "merged")}
	for _, p := range []string{l.lower, l.upper, l.work, l.merged} {
		must(t, os.Mkdir(p, 0o755))
	}
	return l
}

// mount mounts the overlay with extra options; it skips the test when the
// kernel has no overlayfs at all.
func (l layers) mount(t *testing.T, opts string) {
	t.Helper()
	data := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", l.lower, l.upper, l.work)
	if opts != "" {
		data += "," + opts
	}
	if err := unix.Mount("overlay", l.merged, "overlay", 0, data); err != nil {
		if fsTypes, _ := os.ReadFile("/proc/filesystems"); !bytes.Contains(fsTypes, []byte("overlay")) {
			t.Skipf("the kernel has no overlayfs (mount: %v)", err)
		}
		t.Fatalf("mount overlay %s: %v", data, err)
	}
	t.Cleanup(func() { unix.Unmount(l.merged, unix.MNT_DETACH) })
}

func (l layers) unmount(t *testing.T) {
	t.Helper()
	must(t, unix.Unmount(l.merged, 0))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, p, content string, perm os.FileMode) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(content), perm))
	must(t, os.Chmod(p, perm))
}

func run(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// bigFile writes size bytes of a repeating pattern, ending in last.
func bigFile(t *testing.T, p string, size int, last byte) {
	t.Helper()
	b := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	b[len(b)-1] = last
	must(t, os.WriteFile(p, b, 0o644))
}

const bigSize = 8 << 20

var tPast = time.Unix(1e9, 0)

// buildLower makes a small image tree with every kind of entry.
func buildLower(t *testing.T, root string) {
	j := func(p string) string { return filepath.Join(root, p) }
	write(t, j("etc/hostname"), "image\n", 0o644)
	write(t, j("etc/owned"), "owned\n", 0o644)
	write(t, j("etc/xattr"), "x\n", 0o644)
	write(t, j("etc/xattr-drop"), "x\n", 0o644)
	must(t, unix.Lsetxattr(j("etc/xattr-drop"), "user.origin", []byte("lower"), 0))
	write(t, j("etc/gone"), "bye\n", 0o644)
	write(t, j("etc/rename-me"), "moving\n", 0o644)
	write(t, j("etc/lowerfile"), "linked later\n", 0o644)
	write(t, j("etc/touched"), "touch only\n", 0o644)
	write(t, j("etc/rewritten"), "same bytes\n", 0o644)
	write(t, j("etc/tofile-dir"), "becomes a dir\n", 0o644)
	write(t, j("etc/todir-file/inner"), "dir becomes a file\n", 0o644)
	must(t, os.Symlink("hostname", j("etc/link")))
	write(t, j("bin/tool"), "#!/bin/sh\n", 0o755)
	write(t, j("bin/suid"), "#!/bin/sh\n", 0o755)
	write(t, j("var/old/a"), "a\n", 0o644)
	write(t, j("var/old/sub/b"), "b\n", 0o644)
	write(t, j("opt/app/same"), "kept\n", 0o644)
	write(t, j("opt/app/other"), "dropped\n", 0o644)
	write(t, j("srv/dir/f"), "f\n", 0o644)
	write(t, j("lh1"), "lower link\n", 0o644)
	must(t, os.Link(j("lh1"), j("lh2")))
	must(t, unix.Mknod(j("node"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))))
	must(t, unix.Mkfifo(j("fifo"), 0o644))
	bigFile(t, j("big"), bigSize, 'x')
	write(t, j("white space/tab\tname"), "odd\n", 0o644)
}

// change makes every kind of development change through the merged view.
func change(t *testing.T, m string) {
	j := func(p string) string { return filepath.Join(m, p) }
	write(t, j("new.txt"), "new\n", 0o644)
	write(t, j("newdir/sub/file"), "deep\n", 0o600)
	write(t, j("etc/hostname"), "devboard\n", 0o644)
	must(t, os.Chmod(j("bin/tool"), 0o700))
	must(t, unix.Chmod(j("bin/suid"), 0o4755))
	must(t, os.Lchown(j("etc/owned"), 1000, 1000))
	must(t, unix.Lsetxattr(j("etc/xattr"), "user.test", []byte("v\x00bin"), 0))
	must(t, unix.Lremovexattr(j("etc/xattr-drop"), "user.origin"))
	must(t, os.Remove(j("etc/gone")))
	must(t, os.RemoveAll(j("var/old")))
	must(t, os.RemoveAll(j("opt/app")))
	write(t, j("opt/app/same"), "kept\n", 0o644)
	write(t, j("opt/app/new"), "fresh\n", 0o644)
	must(t, os.Rename(j("etc/rename-me"), j("etc/renamed")))
	run(t, m, "mv", "srv/dir", "srv/dir2") // EXDEV with redirect_dir=off: mv copies
	must(t, os.Remove(j("etc/link")))
	must(t, os.Symlink("owned", j("etc/link")))
	must(t, unix.Mkfifo(j("run-fifo"), 0o600))
	must(t, unix.Mknod(j("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, os.Remove(j("node")))
	must(t, unix.Mknod(j("node"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 5))))
	write(t, j("h1"), "hard\n", 0o644)
	must(t, os.Link(j("h1"), j("h2")))
	must(t, os.Link(j("etc/lowerfile"), j("etc/lowerfile-link")))
	bigFile(t, j("big"), bigSize, 'y')
	bigFile(t, j("big-new"), bigSize, 'z')
	must(t, os.Chtimes(j("etc/touched"), tPast, tPast))
	write(t, j("etc/rewritten"), "same bytes\n", 0o644)
	must(t, os.Remove(j("etc/tofile-dir")))
	write(t, j("etc/tofile-dir/x"), "now a dir\n", 0o644)
	must(t, os.RemoveAll(j("etc/todir-file")))
	write(t, j("etc/todir-file"), "now a file\n", 0o644)
	write(t, j("white space/new\nline"), "odd\n", 0o644)
}

// entry is the ground-truth view of one path: an independent, simple
// reading of a tree that knows nothing about overlayfs.
type entry struct {
	typ      fs.FileMode
	perm     fs.FileMode
	uid, gid uint32
	rdev     uint64
	sum      [32]byte
	target   string
	xattrs   string
	ino      uint64
	nlink    uint64
}

func snapshot(t *testing.T, root string) map[string]entry {
	t.Helper()
	m := map[string]entry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = path.Clean("/" + filepath.ToSlash(rel))
		if rel == "/"+ManifestName {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		e := entry{typ: fs.FileMode(st.Mode & unix.S_IFMT), perm: fs.FileMode(st.Mode & 0o7777), uid: st.Uid, gid: st.Gid, ino: st.Ino, nlink: uint64(st.Nlink)}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.sum = sha256.Sum256(b)
		case unix.S_IFLNK:
			e.target, _ = os.Readlink(p)
			e.perm = 0
		case unix.S_IFCHR, unix.S_IFBLK:
			e.rdev = uint64(st.Rdev)
		}
		buf := make([]byte, 1<<16)
		n, _ := unix.Llistxattr(p, buf)
		var xs []string
		for _, name := range strings.Split(string(buf[:n]), "\x00") {
			if name == "" || strings.Contains(name, ".overlay.") {
				continue
			}
			v := make([]byte, 1<<16)
			vn, err := unix.Lgetxattr(p, name, v)
			if err != nil {
				return err
			}
			xs = append(xs, name+"="+string(v[:vn]))
		}
		sort.Strings(xs)
		e.xattrs = strings.Join(xs, "\x00")
		m[rel] = e
		return nil
	})
	must(t, err)
	return m
}

// truth lists "K path" lines that the merged view implies against the lower.
func truth(lower, merged map[string]entry) []string {
	var out []string
	for p, me := range merged {
		le, ok := lower[p]
		switch {
		case !ok:
			out = append(out, "A "+p)
		case le.typ != me.typ || le.sum != me.sum || le.target != me.target || le.rdev != me.rdev:
			out = append(out, "M "+p)
		case le.perm != me.perm || le.uid != me.uid || le.gid != me.gid || le.xattrs != me.xattrs:
			out = append(out, "m "+p)
		}
	}
	for p := range lower {
		if _, ok := merged[p]; ok {
			continue
		}
		// Only the topmost removed path: below it everything went too,
		// and below a path whose type changed the lower content is hidden.
		parent := path.Dir(p)
		if pl, pm := lower[parent], merged[parent]; pm.typ == unix.S_IFDIR && pl.typ == unix.S_IFDIR {
			if _, ok := merged[parent]; ok {
				out = append(out, "D "+p)
			}
		}
	}
	sort.Strings(out)
	return out
}

// diff runs Walk and returns the listing lines (with raw paths) and the
// opaque directories, sorted.
func diff(t *testing.T, upper, lower string) (lines, opaque []string) {
	t.Helper()
	err := Walk(upper, lower, Options{}, func(c *Change) error {
		if c.Opaque {
			opaque = append(opaque, c.Path)
		}
		if c.Kind != Unchanged {
			lines = append(lines, string(c.Kind)+" "+c.Path)
		}
		return nil
	})
	must(t, err)
	// Walk order: parents first, names in byte order within a directory.
	order := slices.Clone(lines)
	slices.SortStableFunc(order, func(a, b string) int {
		return slices.Compare(strings.Split(a[2:], "/"), strings.Split(b[2:], "/"))
	})
	compareLines(t, "walk order", lines, order)
	sort.Strings(lines)
	return lines, opaque
}

func compareLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s differ\n got: %q\nwant: %q", what, got, want)
	}
}

// compareTrees checks that an applied tree equals the merged view in every
// respect the export carries (mtimes aside) and keeps the merged view's
// hard links.
func compareTrees(t *testing.T, what string, got, want map[string]entry) {
	t.Helper()
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("%s: %s missing", what, p)
			continue
		}
		if g.typ != w.typ || g.perm != w.perm || g.uid != w.uid || g.gid != w.gid || g.sum != w.sum ||
			g.target != w.target || g.rdev != w.rdev || g.xattrs != w.xattrs {
			t.Errorf("%s: %s differs:\n got %+v\nwant %+v", what, p, g, w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: %s should not exist", what, p)
		}
	}
	// Every group of hard links in the merged view must stay one inode.
	groups := map[uint64][]string{}
	for p, w := range want {
		if w.typ != unix.S_IFDIR && w.nlink > 1 {
			groups[w.ino] = append(groups[w.ino], p)
		}
	}
	for _, g := range groups {
		for _, p := range g[1:] {
			if got[p].ino != got[g[0]].ino {
				t.Errorf("%s: %s and %s are not hard-linked", what, g[0], p)
			}
		}
	}
}

func TestOverlayEveryChange(t *testing.T) {
	for _, tc := range []struct {
		name, opts string
		// Writing to one name of a lower hard link is refused with
		// index=on (TestOverlayRefusesHiddenChanges), so index=on skips it.
		breakLowerLink bool
	}{
		{"plain", "redirect_dir=off,metacopy=off,index=off", true},
		{"userxattr", "userxattr,index=off", true},
		{"index", "redirect_dir=off,metacopy=off,index=on", false},
		{"tmpfs", "", true}, // the upper on tmpfs, as in a tmpfs development boot
	} {
		t.Run(tc.name, func(t *testing.T) { everyChange(t, tc.opts, tc.breakLowerLink, tc.name == "tmpfs") })
	}
}

func everyChange(t *testing.T, opts string, breakLowerLink, tmpfs bool) {
	l := newLayers(t)
	if tmpfs {
		fsDir := filepath.Join(filepath.Dir(l.upper), "upperfs")
		must(t, os.Mkdir(fsDir, 0o755))
		must(t, unix.Mount("tmpfs", fsDir, "tmpfs", 0, "mode=0755"))
		t.Cleanup(func() { unix.Unmount(fsDir, unix.MNT_DETACH) })
		l.upper, l.work = filepath.Join(fsDir, "upper"), filepath.Join(fsDir, "work")
		must(t, os.Mkdir(l.upper, 0o755))
		must(t, os.Mkdir(l.work, 0o755))
	}
	buildLower(t, l.lower)
	l.mount(t, opts)
	change(t, l.merged)
	if breakLowerLink {
		write(t, filepath.Join(l.merged, "lh1"), "changed one name\n", 0o644)
	}
	wantTree := snapshot(t, l.merged)
	lowerTree := snapshot(t, l.lower)
	want := truth(lowerTree, wantTree)
	l.unmount(t)

	got, opaque := diff(t, l.upper, l.lower)
	compareLines(t, "listing vs merged-view ground truth", got, want)
	compareLines(t, "opaque directories", opaque, []string{"/opt/app"})
	for _, must := range []string{"D /etc/gone", "D /var/old", "D /opt/app/other", "m /bin/tool", "m /etc/owned", "m /etc/xattr",
		"M /etc/link", "M /big", "M /etc/todir-file", "M /etc/tofile-dir", "A /h2", "A /etc/lowerfile-link", "m /bin/suid", "D /srv/dir", "M /node"} {
		if !slices.Contains(got, must) {
			t.Errorf("listing lacks %q", must)
		}
	}
	if t.Failed() {
		return
	}

	t.Run("tar", func(t *testing.T) {
		dir := t.TempDir()
		tarFile, applied := filepath.Join(dir, "changes.tar"), filepath.Join(dir, "src")
		f, err := os.Create(tarFile)
		must(t, err)
		tw, err := NewTarWriter(f)
		must(t, err)
		must(t, Walk(l.upper, l.lower, Options{}, tw.Add))
		must(t, tw.Close())
		must(t, f.Close())
		// Apply as docs/development.md says, with GNU tar and xargs.
		run(t, dir, "cp", "-a", l.lower, applied)
		run(t, applied, "sh", "-c", `tar -xOf "$1" ./`+ManifestName+` | xargs -0 -r rm -rf --`, "sh", tarFile)
		run(t, applied, "tar", "-xpf", tarFile, "--xattrs", "--xattrs-include=*", "--numeric-owner", "--exclude=./"+ManifestName)
		compareTrees(t, "tar applied to the lower", snapshot(t, applied), wantTree)
	})
	t.Run("dir", func(t *testing.T) {
		dir := t.TempDir()
		out, applied := filepath.Join(dir, "changes"), filepath.Join(dir, "src")
		dw, err := NewDirWriter(out)
		must(t, err)
		must(t, Walk(l.upper, l.lower, Options{}, dw.Add))
		must(t, dw.Close())
		run(t, dir, "cp", "-a", l.lower, applied)
		// Deletions through RemoveDeleted here; the tar case uses xargs.
		m, err := OpenManifest(out)
		must(t, err)
		_, err = RemoveDeleted(applied, m)
		must(t, err)
		must(t, m.Close())
		run(t, dir, "cp", "-a", "--remove-destination", out+"/.", applied)
		must(t, os.Remove(filepath.Join(applied, ManifestName)))
		compareTrees(t, "dir applied to the lower", snapshot(t, applied), wantTree)
	})
	t.Run("json", func(t *testing.T) {
		var buf bytes.Buffer
		lister := NewLister(&buf, true)
		// As in the booted system, the upper is reached through a symlink.
		link := filepath.Join(t.TempDir(), "upper")
		must(t, os.Symlink(l.upper, link))
		must(t, Walk(link, l.lower, Options{}, lister.Add))
		var n int
		for line := range strings.Lines(buf.String()) {
			var r Record
			must(t, json.Unmarshal([]byte(line), &r))
			if r.Path == "/etc/xattr" && (len(r.Xattrs) != 1 || string(r.Xattrs[0].Value) != "v\x00bin") {
				t.Errorf("xattrs of /etc/xattr: %+v", r.Xattrs)
			}
			if r.Path == "/null" && r.Device != "1:3" {
				t.Errorf("device of /null: %q", r.Device)
			}
			n++
		}
		if n != len(got)+len(opaque) {
			t.Errorf("%d JSON lines, want %d", n, len(got)+len(opaque))
		}
	})
	t.Run("times", func(t *testing.T) {
		var touched bool
		must(t, Walk(l.upper, l.lower, Options{CompareTimes: true}, func(c *Change) error {
			touched = touched || (c.Path == "/etc/touched" && c.Kind == Meta && slices.Equal(c.Why, []string{"mtime"}))
			return nil
		}))
		if !touched {
			t.Error("with CompareTimes, /etc/touched is not reported as an mtime change")
		}
	})
}

// TestOverlayRefusesHiddenChanges: with redirect_dir, metacopy, or index
// with a lower hard link copied up, the upper alone does not say what
// changed; devdiff must refuse, naming why.
func TestOverlayRefusesHiddenChanges(t *testing.T) {
	for _, tc := range []struct {
		name, opts, want string
		change           func(t *testing.T, m string)
	}{
		{"redirect", "redirect_dir=on,metacopy=off,index=off", "redirect_dir=off", func(t *testing.T, m string) {
			must(t, os.Rename(filepath.Join(m, "srv/dir"), filepath.Join(m, "srv/moved")))
		}},
		{"metacopy", "redirect_dir=on,metacopy=on,index=off", "metacopy=off", func(t *testing.T, m string) {
			must(t, os.Chmod(filepath.Join(m, "big"), 0o600))
		}},
		{"index", "redirect_dir=off,metacopy=off,index=on", "index=off", func(t *testing.T, m string) {
			write(t, filepath.Join(m, "lh1"), "changed both names\n", 0o644)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLayers(t)
			buildLower(t, l.lower)
			l.mount(t, tc.opts)
			tc.change(t, l.merged)
			l.unmount(t)
			err := Walk(l.upper, l.lower, Options{}, func(*Change) error { return nil })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Walk error = %v, want one advising %s", err, tc.want)
			}
		})
	}
}

// TestXattrWhiteouts builds a layer by hand with the xattr forms of
// whiteouts and opaque directories (both namespaces), checks what the
// kernel makes of it as the top layer of a read-only overlay, and that
// devdiff agrees.
func TestXattrWhiteouts(t *testing.T) {
	for _, ns := range []string{"trusted", "user"} {
		t.Run(ns, func(t *testing.T) {
			l := newLayers(t)
			write(t, filepath.Join(l.lower, "a/f1"), "1\n", 0o644)
			write(t, filepath.Join(l.lower, "a/f2"), "2\n", 0o644)
			write(t, filepath.Join(l.lower, "b/g1"), "1\n", 0o644)
			write(t, filepath.Join(l.lower, "b/g2"), "2\n", 0o644)
			set := func(p, name, v string) {
				must(t, unix.Lsetxattr(filepath.Join(l.upper, p), ns+".overlay."+name, []byte(v), 0))
			}
			must(t, os.MkdirAll(filepath.Join(l.upper, "a"), 0o755))
			write(t, filepath.Join(l.upper, "a/f1"), "", 0o644)
			set("a/f1", "whiteout", "")
			set("a", "opaque", "x") // "x": holds xattr whiteouts, not opaque
			set("a", "whiteouts", "")
			must(t, os.MkdirAll(filepath.Join(l.upper, "b"), 0o755))
			write(t, filepath.Join(l.upper, "b/g2"), "2\n", 0o644)
			set("b", "opaque", "y")

			opts := ""
			if ns == "user" {
				opts = "userxattr"
			}
			data := fmt.Sprintf("lowerdir=%s:%s", l.upper, l.lower)
			if opts != "" {
				data += "," + opts
			}
			if err := unix.Mount("overlay", l.merged, "overlay", unix.MS_RDONLY, data); err != nil {
				t.Fatalf("mount overlay %s: %v", data, err)
			}
			t.Cleanup(func() { unix.Unmount(l.merged, unix.MNT_DETACH) })
			want := truth(snapshot(t, l.lower), snapshot(t, l.merged))
			l.unmount(t)
			// Kernels before 6.7 ignore xattr whiteouts; the listing is
			// then still what overlayfs documents, so check it directly.
			documented := []string{"D /a/f1", "D /b/g1"}
			if !slices.Equal(want, documented) {
				t.Logf("kernel's merged view gives %q, overlayfs documents %q", want, documented)
			}
			got, opaque := diff(t, l.upper, l.lower)
			compareLines(t, "listing", got, documented)
			compareLines(t, "opaque", opaque, []string{"/b"})
		})
	}
}
