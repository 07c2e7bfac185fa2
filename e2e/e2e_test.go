// Package e2e boots mcinit for real: Debian's kernels under QEMU (TCG) with
// a swtpm TPM, the initramfs built by `mcinit initramfs`, and a disk built
// by `mcinit image`. Run with MCINIT_E2E=1 (make e2e).
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mcinit/mcinit/e2e/fixture"
	"github.com/mcinit/mcinit/e2e/harness"
)

var (
	envMu   sync.Mutex
	envs    = map[string]*fixture.Env{}
	envErrs = map[string]error{}
	envRoot string
	// boots counts QEMU boots: MCINIT_E2E=1 with none is a failed run.
	boots atomic.Int64
)

func TestMain(m *testing.M) {
	// MCINIT_E2E_DIR keeps the built inputs between runs (for iterating
	// on one test); by default everything is built fresh.
	dir := os.Getenv("MCINIT_E2E_DIR")
	keep := dir != ""
	if !keep {
		d, err := os.MkdirTemp("", "mcinit-e2e-")
		if err != nil {
			panic(err)
		}
		dir = d
	}
	envRoot = dir
	code := m.Run()
	if code == 0 && os.Getenv(harness.EnvE2E) == "1" && boots.Load() == 0 {
		// A run that selected no boot test (a -run typo, every test
		// skipped) is green without proving anything.
		fmt.Fprintln(os.Stderr, "e2e: FAIL: MCINIT_E2E=1 but no QEMU boot ran")
		code = 1
	}
	if code == 0 && !keep {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// env builds (once) the boot inputs for arch.
func env(t *testing.T, arch string) *fixture.Env {
	t.Helper()
	harness.RequireE2E(t)
	envMu.Lock()
	defer envMu.Unlock()
	if e, ok := envs[arch]; ok {
		return e
	}
	if err, ok := envErrs[arch]; ok {
		t.Fatalf("fixture for %s failed earlier: %v", arch, err)
	}
	dir := filepath.Join(envRoot, arch)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e, err := fixture.New(context.Background(), dir, arch, func(f string, a ...any) { t.Logf("fixture %s: "+f, append([]any{arch}, a...)...) })
	if err != nil {
		envErrs[arch] = err
		t.Fatalf("fixture for %s: %v", arch, err)
	}
	envs[arch] = e
	return e
}

// boot runs m and fails the test when QEMU could not run at all. The serial
// log is kept for failing tests.
func boot(t *testing.T, m harness.Machine) *harness.Result {
	t.Helper()
	m.LogDir = harness.LogDir(t)
	boots.Add(1)
	r, err := harness.Boot(context.Background(), m)
	if err != nil {
		t.Fatalf("boot %s: %v", m.Name, err)
	}
	t.Logf("boot %s: %s in %v; mcinit said:\n%s", m.Name, r.Outcome, r.Elapsed.Round(1e7), mcinitLines(r))
	return r
}

func mcinitLines(r *harness.Result) string {
	var b strings.Builder
	for _, l := range r.Mcinit {
		b.WriteString("  " + l.Text + "\n")
	}
	return b.String()
}

// wantReport checks testinit's report values.
func wantReport(t *testing.T, r *harness.Result, kv map[string]string) {
	t.Helper()
	if !r.ReportComplete {
		t.Fatalf("no complete testinit report (outcome %s); log %s", r.Outcome, r.LogPath)
	}
	for k, want := range kv {
		got, _ := r.Value(k)
		if got != want {
			t.Errorf("report %s = %q, want %q (log %s)", k, got, want, r.LogPath)
		}
	}
}

// wantRefusal checks the exact refusal line and that the real init never ran.
func wantRefusal(t *testing.T, r *harness.Result, causePrefix string) {
	t.Helper()
	line, ok := r.First("mcinit: refusing to boot: ")
	if !ok {
		t.Fatalf("no refusal line (outcome %s); log %s", r.Outcome, r.LogPath)
	}
	cause := strings.TrimPrefix(line.Text, "mcinit: refusing to boot: ")
	if !strings.HasPrefix(cause, causePrefix) {
		t.Errorf("refusal %q, want cause starting %q", cause, causePrefix)
	}
	if r.ReportComplete || r.Has("MCINIT-TEST-BEGIN") {
		t.Errorf("the real init ran after a refusal")
	}
	if r.Outcome != harness.Halted {
		t.Errorf("outcome %s, want %s", r.Outcome, harness.Halted)
	}
}
