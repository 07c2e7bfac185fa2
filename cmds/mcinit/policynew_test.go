package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/policy"
)

// TestPolicyNew: `policy new` writes the canonical bytes of the policy its
// flags describe, refuses values `policy sign` would refuse, and never
// overwrites a file.
func TestPolicyNew(t *testing.T) {
	dir := t.TempDir()
	hash := strings.Repeat("ab", 32)
	out := filepath.Join(dir, "p.toml")
	args := []string{"-version", "4", "-board", "qemu-x86_64,qemu-aarch64-virt", "-root-name", "demo", "-root-hash", hash, "-data-blocks", "9", "-out", out}
	if err := runPolicy(append([]string{"new"}, args...)); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := policy.Marshal(&policy.Policy{
		Format: 1, Version: 4, Boards: []string{"qemu-x86_64", "qemu-aarch64-virt"},
		Production: policy.Production{Roots: []policy.Root{{Name: "demo", RootHash: hash, DataBlocks: 9}}},
	})
	if err != nil || string(got) != string(want) {
		t.Errorf("wrote\n%s\nwant\n%s (%v)", got, want, err)
	}
	p, err := policy.Parse(got)
	if err != nil || p.Development.Allowed() || !reflect.DeepEqual(p.Boards, []string{"qemu-x86_64", "qemu-aarch64-virt"}) {
		t.Errorf("parsed %+v, %v", p, err)
	}
	if c := exitCode("policy", runPolicy(append([]string{"new"}, args...))); c != exitError {
		t.Errorf("over an existing file: exit %d", c)
	}
	bad := filepath.Join(dir, "bad.toml")
	for _, tc := range [][]string{
		{"-version", "1", "-board", "qemu-x86_64", "-root-hash", "AB", "-data-blocks", "9", "-out", bad},
		{"-version", "1", "-board", "qemu-x86_64", "-root-hash", hash, "-out", bad},
		{"-version", "1", "-board", "generic-x86_64", "-root-hash", hash, "-data-blocks", "9", "-out", bad},
		{"-version", "1", "-root-hash", hash, "-data-blocks", "9", "-out", bad},
	} {
		if c := exitCode("policy", runPolicy(append([]string{"new"}, tc...))); c != exitUsage {
			t.Errorf("%q: exit %d, want %d", tc, c, exitUsage)
		}
		if _, err := os.Stat(bad); err == nil {
			t.Fatalf("%q: wrote a policy", tc)
		}
	}
}
