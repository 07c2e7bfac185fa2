package harness

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// EnvE2E gates the boot tests: `make e2e` sets it to 1.
const EnvE2E = "MCINIT_E2E"

// RequireE2E skips t unless MCINIT_E2E=1.
func RequireE2E(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvE2E) != "1" {
		t.Skip("QEMU boot test: runs only with MCINIT_E2E=1 (make e2e)")
	}
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// LogDir returns a directory for t's serial logs:
// $MCINIT_E2E_LOGS/<test name>, by default <repo>/out/e2e-logs/<test name>.
// It is removed when t passes and kept when it fails, so every failing
// boot's console can be read afterwards.
func LogDir(t testing.TB) string {
	t.Helper()
	base := os.Getenv("MCINIT_E2E_LOGS")
	if base == "" {
		root, err := RepoRoot()
		if err != nil {
			t.Fatalf("log dir: %v", err)
		}
		base = filepath.Join(root, "out", "e2e-logs")
	}
	dir := filepath.Join(base, unsafeName.ReplaceAllString(t.Name(), "_"))
	if err := os.RemoveAll(dir); err != nil {
		t.Fatalf("log dir: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("log dir: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serial logs kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}
