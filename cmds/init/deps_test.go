package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoHostOnlyDeps: /init links no module decompressor and no ELF
// reader. They belong to the host (kmodules/modinfo; images hold
// uncompressed modules) and cost /init start-up time and size:
// klauspost/compress's package init alone took 1.3 ms in a guest.
func TestNoHostOnlyDeps(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not found: %v", err)
	}
	cmd := exec.Command(goTool, "list", "-deps", ".")
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{"github.com/klauspost/compress", "github.com/ulikunitz/xz", "compress/gzip", "compress/flate", "compress/zlib", "debug/elf", "debug/dwarf"}
	deps := strings.Fields(string(out))
	if len(deps) < 20 {
		t.Fatalf("go list -deps gave only %d packages: %q", len(deps), out)
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("/init depends on %s", d)
			}
		}
	}
}
