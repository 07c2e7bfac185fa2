package rootfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFindInit builds a Debian-like tree: /sbin/init is an absolute
// symlink to /lib/systemd/systemd, which must resolve inside the new root
// even where the host (or the initramfs) has no such file.
func TestFindInit(t *testing.T) {
	root := t.TempDir()
	mk := func(p string, mode os.FileMode) {
		t.Helper()
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("#!/bin/true\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	ln := func(target, p string) {
		t.Helper()
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
	mk("lib/mcinit-test/systemd", 0o755)
	ln("/lib/mcinit-test/systemd", "usr/sbin/init")
	ln("/usr/sbin/init", "sbin/init") // absolute, two hops
	// The host has /bin/sh; the new root does not: ".." and absolute
	// links must not reach the host's.
	ln("../../../../../../../bin/sh", "sbin/escape")
	ln("/bin/sh", "sbin/abs")
	mk("bin/plain", 0o755)
	ln("/nonexistent", "sbin/dangling")
	if err := os.MkdirAll(filepath.Join(root, "sbin/dir"), 0o755); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct{ init, want, err string }{
		{"/sbin/init", "/lib/mcinit-test/systemd", ""},
		{"/bin/plain", "/bin/plain", ""},
		{"/sbin/escape", "", "no executable /sbin/escape in the new root"},
		{"/sbin/abs", "", "no executable /sbin/abs in the new root"},
		{"/sbin/dangling", "", "no executable /sbin/dangling in the new root"},
		{"/sbin/missing", "", "no executable /sbin/missing in the new root"},
		{"/sbin/dir", "", "not an executable file"},
		{"sbin/init", "", "not an absolute path"},
	} {
		got, err := FindInit(root, tc.init)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("FindInit(%s) = %q, %v; want %q", tc.init, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("FindInit(%s) = %q, %v; want an error containing %q", tc.init, got, err, tc.err)
		}
	}
}
