package harness

import (
	"os"
	"testing"
)

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
