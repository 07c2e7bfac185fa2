package diskimage

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// capNetRaw is a version-2 security.capability value granting
// cap_net_raw (13) permitted and effective, as `setcap cap_net_raw+ep` writes.
func capNetRaw() []byte {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000000|1)
	binary.LittleEndian.PutUint32(b[4:], 1<<13)
	return b
}

type wantFile struct {
	path      string
	uid, gid  uint32
	mode      uint32 // permission and setuid/setgid/sticky bits
	capNetRaw bool
}

var ownedFiles = []wantFile{
	{"etc/shadow", 0, 42, 0o640, false},
	{"usr/sbin/unix_chkpwd", 0, 42, 0o2755, false},
	{"usr/bin/ping", 0, 0, 0o755, true},
	{"usr/bin/su", 0, 0, 0o4755, false},
	{"var/tmp", 0, 0, 0o1777, false},
	{"home/user/notes", 1000, 1000, 0o600, false},
}

// ownedTree writes a tree with foreign owners, setuid/setgid/sticky
// bits and a file capability (needs root).
func ownedTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	for _, f := range ownedFiles {
		p := filepath.Join(dir, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if f.path == "var/tmp" {
			os.Mkdir(p, 0o755)
		} else if err := os.WriteFile(p, []byte("content of "+f.path+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, int(f.uid), int(f.gid)); err != nil {
			t.Fatal(err)
		}
		if err := unix.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
		if f.capNetRaw {
			if err := unix.Setxattr(p, "security.capability", capNetRaw(), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Symlink("/usr/lib/systemd/systemd", filepath.Join(dir, "usr/sbin/init")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		// Creating files owned by others and setting file capabilities
		// needs root; this is the fixture, not a tool the test could install.
		t.Skip("needs root to create foreign owners and file capabilities")
	}
}

// mountRoot loop-mounts the root filesystem of a built disk read-only.
func mountRoot(t *testing.T, disk string, res *Result) string {
	t.Helper()
	mnt := t.TempDir()
	out, err := exec.Command("mount", "-t", res.RootFS, "-o", "ro,loop,offset="+itoa(int(res.Root.Offset)), disk, mnt).CombinedOutput()
	if err != nil {
		t.Fatalf("mounting the root on the host: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	return mnt
}

func checkOwned(t *testing.T, root string) {
	t.Helper()
	for _, f := range ownedFiles {
		p := filepath.Join(root, f.path)
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			t.Errorf("%s: %v", f.path, err)
			continue
		}
		if st.Uid != f.uid || st.Gid != f.gid || st.Mode&0o7777 != f.mode {
			t.Errorf("%s: %d:%d %04o, want %d:%d %04o", f.path, st.Uid, st.Gid, st.Mode&0o7777, f.uid, f.gid, f.mode)
		}
		buf := make([]byte, 64)
		n, err := unix.Lgetxattr(p, "security.capability", buf)
		switch {
		case f.capNetRaw && err != nil:
			t.Errorf("%s: file capability lost: %v", f.path, err)
		case f.capNetRaw && !bytes.Equal(buf[:n], capNetRaw()):
			t.Errorf("%s: capability %x, want %x", f.path, buf[:n], capNetRaw())
		case !f.capNetRaw && err == nil:
			t.Errorf("%s: unexpected capability %x", f.path, buf[:n])
		}
	}
	if l, err := os.Readlink(filepath.Join(root, "usr/sbin/init")); err != nil || l != "/usr/lib/systemd/systemd" {
		t.Errorf("usr/sbin/init: %q, %v", l, err)
	}
}

// TestOwnersSurvive: owners, setuid/setgid/sticky bits and file
// capabilities survive into the erofs root, from a directory and from a
// tar archive made by GNU tar, and both give the same bytes.
func TestOwnersSurvive(t *testing.T) {
	needRoot(t)
	tree := ownedTree(t)
	dir := t.TempDir()
	fromDir, err := Build(Spec{Arch: "amd64", RootDir: tree, Verity: true}, filepath.Join(dir, "dir.img"))
	if err != nil {
		t.Fatal(err)
	}
	checkOwned(t, mountRoot(t, filepath.Join(dir, "dir.img"), fromDir))

	archive := filepath.Join(dir, "root.tar")
	command(t, "tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-C", tree, "-cf", archive, ".")
	fromTar, err := Build(Spec{Arch: "amd64", RootTar: archive, Verity: true}, filepath.Join(dir, "tar.img"))
	if err != nil {
		t.Fatal(err)
	}
	checkOwned(t, mountRoot(t, filepath.Join(dir, "tar.img"), fromTar))
	if fromTar.RootHash != fromDir.RootHash {
		t.Errorf("tar root hash %s differs from the directory's %s", fromTar.RootHash, fromDir.RootHash)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "dir.img"))
	b, _ := os.ReadFile(filepath.Join(dir, "tar.img"))
	if !bytes.Equal(a, b) {
		t.Error("the disk from the tar differs from the disk from the directory")
	}

	// The old behaviour stays available: everything root-owned, no xattrs.
	flat, err := Build(Spec{Arch: "amd64", RootDir: tree, AllRoot: true}, filepath.Join(dir, "flat.img"))
	if err != nil {
		t.Fatal(err)
	}
	mnt := mountRoot(t, filepath.Join(dir, "flat.img"), flat)
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(mnt, "etc/shadow"), &st); err != nil || st.Gid != 0 {
		t.Errorf("AllRoot: etc/shadow gid %d, %v", st.Gid, err)
	}
}

// TestReproducibleOwned: the same tree gives the same disk, and fixed salt
// and UUID land in the superblock.
func TestReproducibleOwned(t *testing.T) {
	needRoot(t)
	tree := ownedTree(t)
	dir := t.TempDir()
	spec := Spec{Arch: "amd64", RootDir: tree, Verity: true,
		Salt: strings.Repeat("ab", 32), VerityUUID: "11111111-2222-3333-4444-555555555555"}
	r1, err := Build(spec, filepath.Join(dir, "1.img"))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := Build(spec, filepath.Join(dir, "2.img"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "1.img"))
	b, _ := os.ReadFile(filepath.Join(dir, "2.img"))
	if !bytes.Equal(a, b) || r1.RootHash != r2.RootHash {
		t.Fatal("two builds of the same tree differ")
	}
	if r1.Salt != spec.Salt {
		t.Errorf("salt %s, want %s", r1.Salt, spec.Salt)
	}
	hash := extract(t, filepath.Join(dir, "1.img"), *r1.Verity, 4096)
	dump := command(t, "veritysetup", "dump", hash)
	if !strings.Contains(dump, spec.VerityUUID) || !strings.Contains(dump, spec.Salt) {
		t.Errorf("veritysetup dump lacks the fixed UUID or salt:\n%s", dump)
	}
	// A changed owner changes the image.
	os.Lchown(filepath.Join(tree, "etc/shadow"), 0, 0)
	r3, err := Build(spec, filepath.Join(dir, "3.img"))
	if err != nil {
		t.Fatal(err)
	}
	if r3.RootHash == r1.RootHash {
		t.Error("changing an owner left the root hash unchanged")
	}
}

func TestExtractTarRefusesEscapes(t *testing.T) {
	for _, name := range []string{"../evil", "a/../../evil"} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
		tw.Write([]byte("x"))
		tw.Close()
		err := ExtractTar(&buf, t.TempDir())
		if err == nil || !strings.Contains(err.Error(), "leaves the tree") {
			t.Errorf("%q: %v", name, err)
		}
	}
	// A symlink pointing out, then a file through it: os.Root keeps it in.
	outside := t.TempDir()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: outside, Uid: os.Getuid(), Gid: os.Getgid()})
	tw.WriteHeader(&tar.Header{Name: "link/evil", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1, Uid: os.Getuid(), Gid: os.Getgid()})
	tw.Write([]byte("x"))
	tw.Close()
	if err := ExtractTar(&buf, t.TempDir()); err == nil {
		t.Error("a file through a symlink out of the tree was extracted")
	}
	if _, err := os.Stat(filepath.Join(outside, "evil")); err == nil {
		t.Fatal("the archive wrote outside the tree")
	}
}

// FuzzExtractTar: whatever the archive, nothing is written outside the tree.
func FuzzExtractTar(f *testing.F) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "./etc/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "./etc/hostname", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3})
	tw.Write([]byte("box"))
	tw.WriteHeader(&tar.Header{Name: "./sbin/init", Typeflag: tar.TypeSymlink, Linkname: "/lib/systemd/systemd"})
	tw.WriteHeader(&tar.Header{Name: "./etc/hn", Typeflag: tar.TypeLink, Linkname: "./etc/hostname"})
	tw.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "tree")
		os.Mkdir(dir, 0o755)
		ExtractTar(bytes.NewReader(b), dir)
		ents, _ := os.ReadDir(parent)
		if len(ents) != 1 {
			t.Fatalf("extraction wrote next to the tree: %v", ents)
		}
	})
}
