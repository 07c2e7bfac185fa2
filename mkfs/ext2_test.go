package mkfs

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func format(t *testing.T, size int64, opt Ext2Options) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fs.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := Ext2(f, size, opt); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// e2fsck -fn must find nothing to fix, over sizes that cover one group,
// several groups with and without superblock backups, and a last group
// too small to keep.
func TestExt2Fsck(t *testing.T) {
	if _, err := exec.LookPath("e2fsck"); err != nil {
		t.Fatal("e2fsck (e2fsprogs) is required")
	}
	cases := []struct {
		size int64
		bs   int
	}{
		{1 << 20, 1024},
		{64 << 20, 0},
		{64<<20 + 12288, 0},
		{300 << 20, 0},
		{1<<30 + 200<<10, 0},
		{40 << 20, 1024},
		{100 << 20, 2048},
	}
	for _, c := range cases {
		p := format(t, c.size, Ext2Options{BlockSize: c.bs, Label: "mcinit-dev", UUID: [16]byte{1, 2, 3, 4}})
		out, err := exec.Command("e2fsck", "-fn", p).CombinedOutput()
		if err != nil {
			t.Errorf("size %d block %d: e2fsck -fn: %v\n%s", c.size, c.bs, err, out)
		}
	}
}

func TestExt2Dumpe2fs(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	p := format(t, 300<<20, Ext2Options{Label: "upper", UUID: [16]byte{0xde, 0xad, 0xbe, 0xef, 15: 1}, Time: ts})
	out, err := exec.Command("dumpe2fs", "-h", p).CombinedOutput()
	if err != nil {
		t.Fatalf("dumpe2fs: %v\n%s", err, out)
	}
	for _, want := range []string{
		"Filesystem volume name:   upper",
		"Filesystem UUID:          deadbeef-0000-0000-0000-000000000001",
		"Filesystem features:      ext_attr filetype sparse_super large_file",
		"Filesystem state:         clean",
		"Block size:               4096",
		"Block count:              76800",
		"Inode size:	          128",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("dumpe2fs lacks %q:\n%s", want, out)
		}
	}
}

// The kernel mounts it read-write (as ext4, the way /init does) and the
// result still checks clean after writing files.
func TestExt2Mount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a loop device needs root")
	}
	p := format(t, 64<<20, Ext2Options{Label: "mcinit-dev"})
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "ext4", "-o", "loop", p, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v\n%s", err, out)
	}
	mounted := true
	defer func() {
		if mounted {
			exec.Command("umount", mnt).Run()
		}
	}()
	if _, err := os.Stat(filepath.Join(mnt, "lost+found")); err != nil {
		t.Error(err)
	}
	big := bytes.Repeat([]byte("mcinit"), 3<<20)
	if err := os.MkdirAll(filepath.Join(mnt, "upper/var"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "upper/var/big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v\n%s", err, out)
	}
	mounted = false
	if out, err := exec.Command("e2fsck", "-fn", p).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn after writing: %v\n%s", err, out)
	}
}

func TestExt2Refuses(t *testing.T) {
	var w nullWriter
	for _, c := range []struct {
		size int64
		opt  Ext2Options
	}{
		{MinSize - 1, Ext2Options{}},
		{64 << 20, Ext2Options{BlockSize: 512}},
		{64 << 20, Ext2Options{Label: "a label longer than sixteen"}},
		{64 << 20, Ext2Options{BytesPerInode: 100}},
	} {
		if err := Ext2(w, c.size, c.opt); err == nil {
			t.Errorf("size %d %+v: no error", c.size, c.opt)
		}
	}
}

type nullWriter struct{}

func (nullWriter) WriteAt(b []byte, _ int64) (int, error) { return len(b), nil }

func TestBlank(t *testing.T) {
	b := make([]byte, 200<<10)
	if ok, err := Blank(bytes.NewReader(b), 1<<20); !ok || err != nil {
		t.Errorf("zeros: %v %v", ok, err)
	}
	b[150<<10] = 1
	if ok, _ := Blank(bytes.NewReader(b), 1<<20); ok {
		t.Error("a non-zero byte is blank")
	}
	if ok, _ := Blank(bytes.NewReader(b), 100<<10); !ok {
		t.Error("the byte past n counted")
	}
}

// FuzzExt2Layout: any size and options either fail cleanly or produce a
// layout whose writes stay inside the filesystem.
func FuzzExt2Layout(f *testing.F) {
	f.Add(int64(64<<20), 0, 0)
	f.Add(int64(1<<20), 1024, 1024)
	f.Add(int64(1<<30+4096), 4096, 4096)
	f.Add(int64(135266304), 2048, 8192)
	f.Fuzz(func(t *testing.T, size int64, bs, bpi int) {
		if size > 1<<40 {
			return
		}
		if size > 64<<20 && bpi < 1<<16 {
			return // keep each run's writes small
		}
		w := &boundsWriter{size: size}
		if err := Ext2(w, size, Ext2Options{BlockSize: bs, BytesPerInode: bpi}); err != nil {
			return
		}
		if w.err != nil {
			t.Fatal(w.err)
		}
	})
}

type boundsWriter struct {
	size int64
	err  error
}

func (w *boundsWriter) WriteAt(b []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(b)) > w.size {
		w.err = fmt.Errorf("write of %d bytes at %d outside %d", len(b), off, w.size)
	}
	return len(b), nil
}
