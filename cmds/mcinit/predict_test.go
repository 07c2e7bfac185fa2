package main

import (
	"strings"
	"testing"
)

func TestIdentityField(t *testing.T) {
	id := `source=dmi arch=amd64 sys_vendor="QEMU" product_name="a \"b\" c" serial="MCDEV-0001" uuid="1234"`
	for key, want := range map[string]string{
		"serial":       "MCDEV-0001",
		"uuid":         "1234",
		"product_name": `a "b" c`,
		"model":        "",
	} {
		if got := identityField(id, key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if got := identityField(`source=dt serial="unterminated`, "serial"); got != "" {
		t.Errorf("unterminated value gave %q", got)
	}
}

// TestPredictImportedBoard: the predicted board event of a board imported
// from nixos-hardware carries its provenance; an unknown board is refused
// (its provenance would be unknown).
func TestPredictImportedBoard(t *testing.T) {
	dir := t.TempDir()
	polFile, keysDir := signedPolicy(t, dir)
	ident := `source=dt arch=arm64 compatible=["pine64,pinebook-pro"] model="Pine64 Pinebook Pro" serial=""`
	common := []string{"-policy", polFile, "-keys", keysDir, "-identity", ident}
	out := captureStdout(t, func() error { return runPredict(append(common, "-board", "pine64-pinebook-pro")) })
	if !strings.Contains(out, "nixos-hardware-commit=0471accf8d0a8210b31d947497d179ecc99e0021") || !strings.Contains(out, "nixos-hardware-profile=pine64/pinebook-pro") {
		t.Errorf("board event without provenance:\n%s", out)
	}
	out = captureStdout(t, func() error { return runPredict(append(common, "-board", "qemu-aarch64-virt")) })
	if strings.Contains(out, "nixos-hardware") {
		t.Errorf("hand-written board with provenance:\n%s", out)
	}
	if err := runPredict(append(common, "-board", "no-such-board")); err == nil || !strings.Contains(err.Error(), "no-such-board") {
		t.Errorf("unknown board: %v", err)
	}
}
