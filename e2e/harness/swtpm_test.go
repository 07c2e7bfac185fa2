package harness

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/internal/testenv"
	"github.com/mcinit/mcinit/rollback"
)

// TestTPMServerStateSurvives: what is written through a TPMServer (an NV
// index, here by go-tpm and read back by tpm2-tools) is still there after
// Stop and a new start on the same state directory, as a Machine with that
// TPMStateDir will see it.
func TestTPMServerStateSurvives(t *testing.T) {
	testenv.RequireTool(t, "swtpm", "swtpm")
	testenv.RequireTool(t, "tpm2_nvreadpublic", "tpm2-tools")
	ctx := context.Background()
	dir := t.TempDir()
	s, err := StartTPMServer(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
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

	s2, err := StartTPMServer(ctx, dir)
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

// TestParseTPMLog reads a real swtpm level-20 log (tpm2_pcrread sha256:13:
// GetCapability, then PCR_Read).
func TestParseTPMLog(t *testing.T) {
	b, err := os.ReadFile("testdata/swtpm-level20.log")
	if err != nil {
		t.Fatal(err)
	}
	cmds := ParseTPMLog(b)
	if len(cmds) != 2 || cmds[0].Name() != "GetCapability" || cmds[0].Size != 22 || cmds[1].Name() != "PCR_Read" {
		t.Fatalf("ParseTPMLog = %+v", cmds)
	}
	if n := CountTPMCommands(cmds); n["PCR_Read"] != 1 || n["GetCapability"] != 1 {
		t.Errorf("CountTPMCommands = %v", n)
	}
}

func FuzzParseTPMLog(f *testing.F) {
	f.Add([]byte(" SWTPM_IO_Read: length 10\n 80 01 00 00 00 0a 00 00 01 82\n"))
	f.Fuzz(func(t *testing.T, b []byte) { ParseTPMLog(b) })
}
