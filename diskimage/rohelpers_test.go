package diskimage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestApplyROHelpers(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc/fstab"), []byte("# UNCONFIGURED FSTAB FOR BASE SYSTEM\ntmpfs /var/tmp tmpfs defaults 0 0"), 0o644)
	os.WriteFile(filepath.Join(dir, "etc/machine-id"), []byte("0123456789abcdef0123456789abcdef\n"), 0o444)
	if err := ApplyROHelpers(dir); err != nil {
		t.Fatal(err)
	}
	fstab, _ := os.ReadFile(filepath.Join(dir, "etc/fstab"))
	if !strings.Contains(string(fstab), "\ntmpfs /tmp tmpfs mode=1777,nosuid,nodev 0 0\n") {
		t.Errorf("no /tmp mount:\n%s", fstab)
	}
	if strings.Count(string(fstab), "/var/tmp") != 1 {
		t.Errorf("the existing /var/tmp mount was doubled:\n%s", fstab)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "etc/machine-id")); err != nil || len(b) != 0 {
		t.Errorf("machine-id %q, %v: want an empty file", b, err)
	}
	// Idempotent.
	if err := ApplyROHelpers(dir); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "etc/fstab")); string(again) != string(fstab) {
		t.Errorf("a second run changed fstab:\n%s", again)
	}
}
