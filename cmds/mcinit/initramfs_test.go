package main

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
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
