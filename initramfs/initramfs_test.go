package initramfs

import (
	"bytes"
	"path/filepath"
	"runtime"
	"testing"
)

// repoRoot is the module root (the package's parent directory).
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

func testSpec(t *testing.T) Spec {
	return Spec{
		Arch:    "amd64",
		WorkDir: repoRoot(t),
		TempDir: t.TempDir(),
		Files: []File{
			{Path: PolicyFile, Data: []byte("format = 1\n"), Mode: 0o444},
			{Path: SigFile, Data: []byte("sig\n"), Mode: 0o444},
			{Path: KeysDir + "/keyset.toml", Data: []byte("threshold = 1\n"), Mode: 0o444},
		},
	}
}

// TestReproducible builds the same image twice (with the Go compile
// in between, -a, so nothing is shared) and compares the bytes.
func TestReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("builds /init twice with mkuimage (about a minute)")
	}
	var a, b bytes.Buffer
	if err := Build(testSpec(t), &a); err != nil {
		t.Fatal(err)
	}
	if err := Build(testSpec(t), &b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("two builds differ: %d vs %d bytes", a.Len(), b.Len())
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
	if byName["bin/sh"] {
		t.Error("an image without rescue commands has a shell")
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
}
