package swtpm_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/mcinit/mcinit/internal/testenv"
	"github.com/mcinit/mcinit/rollback"
	"github.com/mcinit/mcinit/tpmdev/swtpm"
)

// TestServerStateSurvives: what is written through a Server (an NV index,
// here by go-tpm and read back by tpm2-tools) is still there after Stop
// and a new start on the same state directory, as a QEMU machine on that
// directory will see it. The directory is given relative: swtpm gets it
// absolute.
func TestServerStateSurvives(t *testing.T) {
	testenv.RequireTool(t, "swtpm", "swtpm")
	testenv.RequireTool(t, "tpm2_nvreadpublic", "tpm2-tools")
	ctx := context.Background()
	dir := t.TempDir()
	t.Chdir(dir)
	s, err := swtpm.StartServer(ctx, swtpm.Config{StateDir: "state"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if s.Dir != filepath.Join(dir, "state") {
		t.Errorf("Dir = %q, want it absolute", s.Dir)
	}
	tpm, err := s.Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := rollback.Provision(tpm, rollback.DefaultIndex, nil, 7); err != nil {
		t.Fatal(err)
	}
	tpm.Close()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}

	s2, err := swtpm.StartServer(ctx, swtpm.Config{StateDir: filepath.Join(dir, "state")})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Stop()
	out, err := s2.Tool(ctx, dir, "tpm2_nvreadpublic", "0x01504d43")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "0x1504d43") {
		t.Errorf("tpm2_nvreadpublic does not show the index:\n%s", out)
	}
	tpm, err = s2.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer tpm.Close()
	floor, written, err := rollback.ReadFloor(tpm, rollback.DefaultIndex)
	if err != nil || !written || floor != 7 {
		t.Fatalf("after restart: floor %d written %v err %v, want 7", floor, written, err)
	}
}

// TestRestartResetsPCRs: Restart is a reboot: an extended PCR is zero again.
func TestRestartResetsPCRs(t *testing.T) {
	sw := swtpm.Start(t, swtpm.Config{})
	pcr16 := func() []byte {
		tpm := sw.Open()
		defer tpm.Close()
		rsp, err := tpm2.PCRRead{PCRSelectionIn: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{
			{Hash: tpm2.TPMAlgSHA256, PCRSelect: tpm2.PCClientCompatible.PCRs(16)}}}}.Execute(tpm)
		if err != nil || len(rsp.PCRValues.Digests) != 1 {
			t.Fatalf("PCR_Read: %v", err)
		}
		return rsp.PCRValues.Digests[0].Buffer
	}
	tpm := sw.Open()
	if _, err := (tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(16), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: make([]byte, 32)}}},
	}).Execute(tpm); err != nil {
		t.Fatal(err)
	}
	tpm.Close()
	if v := pcr16(); string(v) == string(make([]byte, 32)) {
		t.Fatal("PCR 16 still zero after an extend")
	}
	sw.Restart()
	if v := pcr16(); string(v) != string(make([]byte, 32)) {
		t.Errorf("PCR 16 after Restart = %x, want zero", v)
	}
}

// TestSocket: the QEMU side starts with a control socket and a fresh
// state that Stop removes with the socket.
func TestSocket(t *testing.T) {
	testenv.RequireTool(t, "swtpm", "swtpm")
	s, err := swtpm.StartSocket(context.Background(), swtpm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(s.Path); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("control socket %s: %v %v", s.Path, fi, err)
	}
	s.Stop()
	s.Stop()
	if _, err := os.Stat(filepath.Dir(s.Path)); !os.IsNotExist(err) {
		t.Errorf("socket directory left behind: %v", err)
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Errorf("temporary state left behind: %v", err)
	}
}

// TestSocketKeepsState: a given state directory is created and kept.
func TestSocketKeepsState(t *testing.T) {
	testenv.RequireTool(t, "swtpm", "swtpm")
	dir := filepath.Join(t.TempDir(), "tpm")
	s, err := swtpm.StartSocket(context.Background(), swtpm.Config{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("state directory: %v", err)
	}
}
