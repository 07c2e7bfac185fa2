package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/mcinit/mcinit/kmodules"
	"github.com/mcinit/mcinit/kmodules/modinfo"
)

// TestInitramfsNoShellWithoutDevelopment: an image whose policy never
// allows development gets no shell, even when -rescue yes asks for one
// (issue 10: "images whose policy never allows development carry no shell").
func TestInitramfsNoShellWithoutDevelopment(t *testing.T) {
	dir := t.TempDir()
	in := func(n string) string { return filepath.Join(dir, n) }
	if c := exitCode("keygen", verbs["keygen"].run([]string{"-out", in("k")})); c != exitOK {
		t.Fatalf("keygen: exit %d", c)
	}
	keys := in("keys")
	if err := os.Mkdir(keys, 0o755); err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(in("k.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keys, "k.pem"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keys, "keyset.toml"), []byte("threshold = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sample, err := os.ReadFile("../../policy/testdata/sample-policy.toml")
	if err != nil {
		t.Fatal(err)
	}
	// The sample's [development] section without anyone allowed.
	never := regexp.MustCompile(`(?s)\[development\].*`).ReplaceAll(sample, []byte("[development]\n"))
	pol := in("p.toml")
	if err := os.WriteFile(pol, never, 0o644); err != nil {
		t.Fatal(err)
	}
	if c := exitCode("policy", verbs["policy"].run([]string{"sign", "-key", in("k.key"), pol})); c != exitOK {
		t.Fatalf("policy sign: exit %d", c)
	}
	err = verbs["initramfs"].run([]string{"-o", in("i.cpio"), "-policy", pol, "-keys", keys,
		"-kernel", in("no-kernel"), "-rescue", "yes"})
	if c := exitCode("initramfs", err); c != exitUsage {
		t.Fatalf("-rescue yes with a development-never policy: exit %d (%v), want usage error", c, err)
	}
	if want := "-rescue yes: the policy never allows development, so the image gets no shell"; err == nil || err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

// TestModuleFilesUncompressed: an image's modules are stored uncompressed
// at .ko paths (/init has no decompressor). A kernel tree whose modules
// are xz, zstd and gzip files (made with the real tools) gives the same
// image files and the same modules.dep as the plain tree, byte for byte.
func TestModuleFilesUncompressed(t *testing.T) {
	plain := debianModules(t, "amd64", "linux-image-cloud-amd64")
	want := []string{"dm-verity", "virtio_blk", "tpm_tis"}
	build := func(root string) ([]byte, map[string][]byte) {
		t.Helper()
		deps, err := modinfo.ResolveDeps(root, want)
		if err != nil {
			t.Fatal(err)
		}
		files, err := moduleFiles(root, deps)
		if err != nil {
			t.Fatal(err)
		}
		var dep bytes.Buffer
		if err := kmodules.WriteDep(&dep, deps); err != nil {
			t.Fatal(err)
		}
		m := map[string][]byte{}
		for _, f := range files {
			m[f.Path] = f.Data
		}
		return dep.Bytes(), m
	}
	wantDep, wantFiles := build(plain)
	if len(wantFiles) < 4 {
		t.Fatalf("only %d module files in the closure", len(wantFiles))
	}

	// The closure's files, compressed in turn with each tool, in a tree
	// without modules.dep (as dpkg -x leaves it) but with modules.builtin.
	z := filepath.Join(t.TempDir(), filepath.Base(plain))
	tools := [][]string{{"xz", "-q", "--check=crc32"}, {"zstd", "-q", "--rm"}, {"gzip"}}
	i := 0
	for rel, data := range wantFiles {
		p := filepath.Join(z, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		c := tools[i%len(tools)]
		i++
		if out, err := exec.Command(c[0], append(c[1:], p)...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v %s", c[0], rel, err, out)
		}
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s left %s uncompressed", c[0], rel)
		}
	}
	builtin, err := os.ReadFile(filepath.Join(plain, "modules.builtin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(z, "modules.builtin"), builtin, 0o644); err != nil {
		t.Fatal(err)
	}
	gotDep, gotFiles := build(z)
	if !bytes.Equal(gotDep, wantDep) {
		t.Errorf("modules.dep from the compressed tree:\n%s\nwant:\n%s", gotDep, wantDep)
	}
	for rel, data := range wantFiles {
		if !bytes.Equal(gotFiles[rel], data) {
			t.Errorf("%s: %d bytes from the compressed tree, want the %d-byte original", rel, len(gotFiles[rel]), len(data))
		}
	}
	if len(gotFiles) != len(wantFiles) {
		t.Errorf("%d files from the compressed tree, want %d", len(gotFiles), len(wantFiles))
	}
}
