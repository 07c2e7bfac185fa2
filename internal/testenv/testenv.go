// Package testenv tells tests whether they run in CI and turns a missing
// tool into a failure there. Outside CI a test may skip when a tool is
// missing (a developer machine without swtpm); in CI the same skip would
// hide a broken machine behind a green run, so it fails instead.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether tests run in CI: CI=true (set by CI systems and by
// `make test`) or MCINIT_E2E=1 (the boot tests, `make e2e`).
func InCI() bool {
	return os.Getenv("CI") == "true" || os.Getenv("MCINIT_E2E") == "1"
}

// Missing ends t because something it needs is absent: a skip outside CI,
// a failure in CI.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("in CI a test may not skip: "+format, args...)
	}
	t.Skipf(format, args...)
}

// RequireTool returns the path of tool, or ends t through Missing naming
// the Debian package that provides it (which the Makefile's DEB_PACKAGES
// must list).
func RequireTool(t testing.TB, tool, debPackage string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		Missing(t, "%s not installed (Debian package %s, in the Makefile's DEB_PACKAGES)", tool, debPackage)
	}
	return p
}
