package swtpm

import (
	"context"
	"testing"

	"github.com/mcinit/mcinit/internal/testenv"
	"github.com/mcinit/mcinit/tpmdev"
)

// Test is a Server owned by one test: failures to run it end the test.
type Test struct {
	s *Server
	t testing.TB
}

// Start runs a Server for t, in a fresh state directory unless
// cfg.StateDir is set, and stops it when the test ends. A missing swtpm
// skips the test on a developer machine and fails it in CI (testenv).
func Start(t testing.TB, cfg Config) *Test {
	t.Helper()
	testenv.RequireTool(t, "swtpm", "swtpm")
	if cfg.Banks != "" {
		testenv.RequireTool(t, "swtpm_setup", "swtpm-tools")
	}
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	s, err := StartServer(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Logf("stopping swtpm: %v", err)
		}
	})
	return &Test{s: s, t: t}
}

// Server is the running server.
func (x *Test) Server() *Server { return x.s }

// Dir is the state directory.
func (x *Test) Dir() string { return x.s.Dir }

// Addr is the -tpm argument of the mcinit verbs for this TPM.
func (x *Test) Addr() string { return x.s.Addr() }

// TCTI is the tpm2-tools TCTI string for this TPM.
func (x *Test) TCTI() string { return x.s.TCTI() }

// Open connects go-tpm to the TPM; close it before running Tool.
func (x *Test) Open() *tpmdev.TPM {
	x.t.Helper()
	tpm, err := x.s.Open()
	if err != nil {
		x.t.Fatalf("connect to swtpm: %v", err)
	}
	return tpm
}

// Tool runs a tpm2-tools command against this TPM and returns its stdout;
// the tool must be installed (testenv).
func (x *Test) Tool(args ...string) (string, error) {
	x.t.Helper()
	testenv.RequireTool(x.t, args[0], "tpm2-tools")
	return x.s.Tool(context.Background(), "", args...)
}

// Pause freezes swtpm: a hung TPM. Resume undoes it.
func (x *Test) Pause() { x.s.Pause() }

// Resume continues a paused swtpm.
func (x *Test) Resume() { x.s.Resume() }

// Restart reboots the TPM on the same state: PCRs reset, NV indices and
// seeds survive.
func (x *Test) Restart() {
	x.t.Helper()
	if err := x.s.Restart(context.Background()); err != nil {
		x.t.Fatal(err)
	}
}
