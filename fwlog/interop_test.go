package fwlog

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	goattest "github.com/google/go-attestation/attest"

	"github.com/mcinit/mcinit/internal/testenv"
)

// TestGoAttestationSecureBoot: go-attestation reads the same Secure Boot
// state and the same db authority from each captured log.
func TestGoAttestationSecureBoot(t *testing.T) {
	for _, c := range captured {
		b, err := os.ReadFile(filepath.Join("testdata", c.name+".bin"))
		if err != nil {
			t.Fatal(err)
		}
		el, err := goattest.ParseEventLog(b)
		if err != nil {
			t.Fatalf("%s: go-attestation: %v", c.name, err)
		}
		gs, err := goattest.ParseSecurebootState(el.Events(goattest.HashSHA256))
		if c.name == "ovmf-x86_64-direct-sb-on" {
			// OVMF's direct kernel boot under Secure Boot logs no authority:
			// go-attestation calls that inconsistent; mcinit calls it
			// unanchored (no UKI in PCR 11), never ok.
			if err == nil || !strings.Contains(err.Error(), "no key was used") {
				t.Errorf("%s: go-attestation: %v, want its no-key-used refusal", c.name, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: go-attestation: %v", c.name, err)
		}
		l, _ := load(t, c.name)
		ours, err := l.SecureBoot()
		if err != nil {
			t.Fatal(err)
		}
		if gs.Enabled != ours.Enabled {
			t.Errorf("%s: go-attestation says Secure Boot %v, we say %v", c.name, gs.Enabled, ours.Enabled)
		}
		if len(gs.PostSeparatorAuthority) != len(ours.Authorities) {
			t.Errorf("%s: go-attestation sees %d authorities, we see %d", c.name, len(gs.PostSeparatorAuthority), len(ours.Authorities))
		}
		for i, a := range gs.PostSeparatorAuthority {
			d := sha256.Sum256(a.Raw)
			if i < len(ours.Authorities) && ours.Authorities[i] != "db:sha256:"+hex.EncodeToString(d[:]) {
				t.Errorf("%s: authority %d: go-attestation %s (sha256 %x), ours %q", c.name, i, a.Subject, d, ours.Authorities[i])
			}
		}
	}
}

// TestTPM2EventlogParses: tpm2_eventlog parses each captured log and sees
// the same Secure Boot value.
func TestTPM2EventlogParses(t *testing.T) {
	testenv.RequireTool(t, "tpm2_eventlog", "tpm2-tools")
	for _, c := range captured {
		out, err := exec.Command("tpm2_eventlog", filepath.Join("testdata", c.name+".bin")).Output()
		if err != nil {
			t.Fatalf("%s: tpm2_eventlog: %v", c.name, err)
		}
		i := strings.Index(string(out), "UnicodeName: SecureBoot")
		if i < 0 {
			t.Fatalf("%s: tpm2_eventlog shows no SecureBoot variable", c.name)
		}
		want := `VariableData: "00"`
		if c.secureBoot {
			want = `VariableData: "01"`
		}
		if rest := string(out[i:]); !strings.Contains(rest[:min(len(rest), 200)], want) {
			t.Errorf("%s: tpm2_eventlog: want %s after SecureBoot", c.name, want)
		}
	}
}
