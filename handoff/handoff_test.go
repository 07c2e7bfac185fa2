package handoff

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mcinit")
	s := Summary{
		Profile: "development", Request: "development", Reason: "dev-allowed-device",
		Board: "qemu-x86_64", Identity: `source=dmi serial="X"`, PolicyVersion: 7,
		PolicyDigest: "ab", Root: "overlay", PCR: 13, Warnings: []string{"w1"},
		InitStartNS: 1e9, HandoffNS: 1.5e9,
	}
	if err := Write(dir, s, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"profile":        "development\n",
		"board":          "qemu-x86_64\n",
		"policy-version": "7\n",
		"pcr":            "13\n",
		"eventlog.bin":   "\x01\x02\x03",
	} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
	sum, _ := os.ReadFile(filepath.Join(dir, "summary"))
	for _, want := range []string{"profile: development\n", "reason: dev-allowed-device\n", "init-ms: 500.0\n", "warning: w1\n"} {
		if !strings.Contains(string(sum), want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "profile"))
	if err != nil || fi.Mode().Perm() != 0o444 {
		t.Errorf("profile mode %v, %v; want read-only", fi.Mode(), err)
	}
}
