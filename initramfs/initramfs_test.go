package initramfs

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/u-root/mkuimage/cpio"
)

// repoRoot is the module root (the package's parent directory).
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// fakeDevice is a stand-in device payload: what mkdevice writes, minus
// the real binary.
func fakeDevice(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	recs := []cpio.Record{
		cpio.Directory("bbin", 0o755),
		cpio.StaticFile("bbin/bb", "not really a busybox", 0o755),
		cpio.Symlink("bbin/init", "bb"),
		cpio.Symlink("init", "bbin/init"),
	}
	if err := cpio.WriteRecords(cpio.Newc.Writer(&b), recs); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func testSpec(t *testing.T) Spec {
	return Spec{
		Arch:   "amd64",
		Device: fakeDevice(t),
		Files: []File{
			{Path: PolicyFile, Data: []byte("format = 1\n"), Mode: 0o444},
			{Path: SigFile, Data: []byte("sig\n"), Mode: 0o444},
			{Path: KeysDir + "/keyset.toml", Data: []byte("threshold = 1\n"), Mode: 0o444},
		},
	}
}

// TestReproducible packs the same inputs twice and compares the bytes.
func TestReproducible(t *testing.T) {
	var a, b bytes.Buffer
	if err := Build(testSpec(t), &a); err != nil {
		t.Fatal(err)
	}
	if err := Build(testSpec(t), &b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("two packs differ: %d vs %d bytes", a.Len(), b.Len())
	}
	recs, err := ReadArchive(a.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]bool{}
	for _, r := range recs {
		byName[r.Name] = true
		if r.MTime != 0 || r.UID != 0 || r.GID != 0 {
			t.Errorf("%s: mtime %d uid %d gid %d, want zeros", r.Name, r.MTime, r.UID, r.GID)
		}
	}
	for _, want := range []string{"init", "bbin/bb", "dev/console", PolicyFile, SigFile, "newroot", "run"} {
		if !byName[want] {
			t.Errorf("image lacks %s", want)
		}
	}
	// A changed input changes the image.
	s := testSpec(t)
	s.Files[0].Data = []byte("format = 2\n")
	var c bytes.Buffer
	if err := Build(s, &c); err != nil || bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Errorf("a changed policy gave the same image (%v)", err)
	}
}

// TestRealDeviceReproducible builds the real device payload twice with
// cmds/mkdevice (as `make build` and the CLI's cache do) and checks the
// payloads and the packed images are byte-identical, that the production
// payload has no shell, and that the build leaves no goimports directory
// behind in the temporary directory.
func TestRealDeviceReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the device payload twice with mkuimage (minutes)")
	}
	root := repoRoot(t)
	xdg := t.TempDir()
	var dirs [2]string
	for i := range dirs {
		dirs[i] = t.TempDir()
		cmd := exec.Command("go", "run", "./cmds/mkdevice", "-arch", "amd64", "-o", dirs[i])
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+xdg)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mkdevice: %v\n%s", err, out)
		}
	}
	for _, rescue := range []bool{false, true} {
		a, err := os.ReadFile(filepath.Join(dirs[0], DeviceFile("amd64", rescue)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(dirs[1], DeviceFile("amd64", rescue)))
		if !bytes.Equal(a, b) {
			t.Fatalf("rescue=%v: two payload builds differ", rescue)
		}
		s := testSpec(t)
		s.Device = a
		var img bytes.Buffer
		if err := Build(s, &img); err != nil {
			t.Fatal(err)
		}
		recs, err := ReadArchive(img.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		shell := false
		for _, r := range recs {
			shell = shell || r.Name == "bin/sh"
		}
		if shell != rescue {
			t.Errorf("rescue=%v: image has a shell: %v", rescue, shell)
		}
	}
	id, err := SourceID(root)
	if err != nil {
		t.Fatal(err)
	}
	stamp, _ := os.ReadFile(filepath.Join(dirs[0], "amd64", "source"))
	if string(stamp) != id+"\n" {
		t.Errorf("source stamp %q, want %q", stamp, id)
	}
}

func TestRefusesBadPaths(t *testing.T) {
	for _, p := range []string{"../etc/x", "init", "/", "etc/../../x"} {
		s := testSpec(t)
		s.Files = append(s.Files, File{Path: p, Data: []byte("x"), Mode: 0o644})
		if err := Build(s, &bytes.Buffer{}); err == nil {
			t.Errorf("path %q accepted", p)
		}
	}
	s := testSpec(t)
	s.Arch = "riscv64"
	if err := Build(s, &bytes.Buffer{}); err == nil {
		t.Error("unsupported arch accepted")
	}
	s = testSpec(t)
	s.Device = nil
	if err := Build(s, &bytes.Buffer{}); err == nil {
		t.Error("no device payload accepted")
	}
	s = testSpec(t)
	s.Files = append(s.Files, File{Path: "bbin/bb", Data: []byte("x"), Mode: 0o755})
	if err := Build(s, &bytes.Buffer{}); err == nil {
		t.Error("a configuration file shadowing the payload accepted")
	}
}

// A board whose modules are all built into the kernel gets no module
// file, but the image still carries modules.builtin and an empty
// modules.dep, so /init finds them built in instead of refusing.
func TestBuiltinOnlyModules(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "modules.builtin"), []byte("kernel/drivers/virtio/virtio_blk.ko\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := testSpec(t)
	s.ModuleRoot, s.KernelRelease = root, "6.1.0-test"
	var b bytes.Buffer
	if err := Build(s, &b); err != nil {
		t.Fatal(err)
	}
	recs, err := ReadArchive(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range recs {
		if r.Info.Mode&cpio.S_IFMT == cpio.S_IFREG {
			data, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
			if err != nil {
				t.Fatal(err)
			}
			got[r.Name] = string(data)
		}
	}
	if got[ModulesDir+"/6.1.0-test/modules.builtin"] != "kernel/drivers/virtio/virtio_blk.ko\n" {
		t.Errorf("modules.builtin missing or changed: %q", got[ModulesDir+"/6.1.0-test/modules.builtin"])
	}
	if d, ok := got[ModulesDir+"/6.1.0-test/modules.dep"]; !ok || d != "" {
		t.Errorf("modules.dep %q (present %v), want empty", d, ok)
	}
}
