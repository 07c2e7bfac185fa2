package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/identity"
	"github.com/mcinit/mcinit/policy"
	"github.com/mcinit/mcinit/signing"
)

const testRootHash = "4f2d9c1e8b7a6f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6"

// testPolicy is a one-root policy for boards, written by policy.Marshal
// (the one writer of the format) after edits.
func testPolicy(t *testing.T, version uint64, boards []string, edits ...func(*policy.Policy)) []byte {
	t.Helper()
	p := &policy.Policy{
		Format:     policy.FormatVersion,
		Version:    version,
		Boards:     boards,
		Production: policy.Production{Roots: []policy.Root{{Name: "A", RootHash: testRootHash, DataBlocks: 1024}}},
	}
	for _, e := range edits {
		e(p)
	}
	b, err := policy.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// predictPolicy lists one unit by its DMI UUID.
func predictPolicy(t *testing.T) []byte {
	return testPolicy(t, 3, []string{"qemu-x86_64"}, func(p *policy.Policy) {
		p.Development.AllowDevices = []policy.Device{{Board: "qemu-x86_64", DeviceID: "8a1c2f0e-uuid"}}
	})
}

// signPolicyText writes text as dir/policy.toml, signed by a new key
// that dir/keys trusts (threshold 1).
func signPolicyText(t *testing.T, dir string, text []byte) (polFile, keysDir string) {
	t.Helper()
	k, err := signing.GenerateKey(signing.AlgEd25519)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := signing.PublicKeyFrom(k.Public())
	pemb, _ := pub.MarshalPEM()
	keysDir = filepath.Join(dir, "keys")
	os.MkdirAll(keysDir, 0o755)
	os.WriteFile(filepath.Join(keysDir, "rel.pem"), pemb, 0o644)
	os.WriteFile(filepath.Join(keysDir, "keyset.toml"), []byte("threshold = 1\n"), 0o644)
	polFile = filepath.Join(dir, "policy.toml")
	os.WriteFile(polFile, text, 0o644)
	sig, err := signing.Sign(k, text)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(polFile+".sig", signing.FormatSignatures([]signing.Signature{sig}), 0o644)
	return polFile, keysDir
}

// TestPredictDecides: predict runs /init's decision on the facts given,
// so the placeholder-serial rule of identity.DeviceID applies (the unit
// is listed by UUID, its serial is a placeholder), a unit the policy does
// not list gets dev-denied, and an identity that is not canonical is a
// usage error.
func TestPredictDecides(t *testing.T) {
	dir := t.TempDir()
	pol, keys := signPolicyText(t, dir, predictPolicy(t))

	listed := identity.Identity{Source: identity.SourceDMI, Arch: "amd64", Serial: "To Be Filled By O.E.M.", SystemUUID: "8a1c2f0e-uuid"}
	other := identity.Identity{Source: identity.SourceDMI, Arch: "amd64", Serial: "To Be Filled By O.E.M.", SystemUUID: "other"}
	run := func(id string, extra ...string) (string, error) {
		out := filepath.Join(dir, "out.json")
		os.Remove(out)
		err := runPredict(append([]string{"-policy", pol, "-keys", keys, "-board", "qemu-x86_64", "-identity", id,
			"-format", "json", "-o", out}, extra...))
		b, _ := os.ReadFile(out)
		return string(b), err
	}
	if out, err := run(listed.String(), "-profile", "development", "-reason", "dev-allowed-device"); err != nil ||
		!strings.Contains(out, `reason=dev-allowed-device`) {
		t.Errorf("listed unit, development: %v\n%s", err, out)
	}
	var rej rejectedError
	if _, err := run(other.String(), "-profile", "development"); !errors.As(err, &rej) || !strings.Contains(err.Error(), "decides production") {
		t.Errorf("unlisted unit, development: %v, want a rejection", err)
	}
	if out, err := run(other.String(), "-request", "development"); err != nil || !strings.Contains(out, `reason=dev-denied`) {
		t.Errorf("unlisted unit, development requested: %v\n%s", err, out)
	}
	if _, err := run(listed.String(), "-board", "intel-nuc"); !errors.As(err, &rej) || !strings.Contains(err.Error(), "not covered") {
		t.Errorf("uncovered board: %v, want a refusal", err)
	}
	var usage usageError
	for _, bad := range []string{"bogus", strings.TrimSuffix(listed.String(), ` uuid="8a1c2f0e-uuid"`)} {
		if _, err := run(bad); !errors.As(err, &usage) {
			t.Errorf("-identity %q: %v, want a usage error", bad, err)
		}
	}
}

// TestPredictImportedBoard: the predicted board event of a board imported
// from nixos-hardware carries its provenance; an unknown board is refused
// (its provenance would be unknown).
func TestPredictImportedBoard(t *testing.T) {
	dir := t.TempDir()
	polFile, keysDir := signPolicyText(t, dir, testPolicy(t, 1, []string{"pine64-pinebook-pro", "qemu-aarch64-virt"}))
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

// TestPredictNow: -now is the device's clock, which only a grant's
// not_after consults; predict agrees with decide on it instead of using
// the host's clock.
func TestPredictNow(t *testing.T) {
	dir := t.TempDir()
	pol, keys := signPolicyText(t, dir, testPolicy(t, 3, []string{"qemu-x86_64"}, func(p *policy.Policy) {
		p.Development.AllowGrants = true
	}))
	// signPolicyText keeps its key to itself: trust a fresh one that signs
	// both the policy and the grant.
	k, err := signing.GenerateKey(signing.AlgEd25519)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := signing.PublicKeyFrom(k.Public())
	pemb, _ := pub.MarshalPEM()
	os.RemoveAll(keys)
	os.MkdirAll(keys, 0o755)
	os.WriteFile(filepath.Join(keys, "rel.pem"), pemb, 0o644)
	os.WriteFile(filepath.Join(keys, "keyset.toml"), []byte("threshold = 1\n"), 0o644)
	polText, _ := os.ReadFile(pol)
	sign := func(file string, doc []byte) {
		sig, err := signing.Sign(k, doc)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(file, doc, 0o644)
		os.WriteFile(file+".sig", signing.FormatSignatures([]signing.Signature{sig}), 0o644)
	}
	sign(pol, polText)
	maxV := uint64(3)
	grant, err := policy.MarshalGrant(&policy.Grant{Format: policy.GrantFormat, Board: "qemu-x86_64", DeviceID: "8a1c2f0e-uuid",
		MaxPolicyVersion: &maxV, NotAfter: "2027-01-31T00:00:00Z"})
	if err != nil {
		t.Fatal(err)
	}
	grantFile := filepath.Join(dir, "unit.toml")
	sign(grantFile, grant)

	id := identity.Identity{Source: identity.SourceDMI, Arch: "amd64", SystemUUID: "8a1c2f0e-uuid"}
	run := func(now string) (string, error) {
		out := filepath.Join(dir, "out.json")
		os.Remove(out)
		profile := "production"
		if now == "2027-01-30T12:00:00Z" {
			profile = "development"
		}
		err := runPredict([]string{"-policy", pol, "-keys", keys, "-board", "qemu-x86_64", "-identity", id.String(),
			"-request", "development", "-profile", profile, "-grant", grantFile, "-now", now, "-format", "json", "-o", out})
		b, _ := os.ReadFile(out)
		return string(b), err
	}
	for now, reason := range map[string]string{
		"2027-01-30T12:00:00Z": "dev-allowed-grant",
		"2027-02-01T00:00:00Z": "dev-denied", // past not_after
		"unset":                "dev-denied", // a clock never set voids it
	} {
		if out, err := run(now); err != nil || !strings.Contains(out, "reason="+reason) {
			t.Errorf("-now %s: %v, want reason=%s\n%s", now, err, reason, out)
		}
	}
	var usage usageError
	if _, err := run("yesterday"); !errors.As(err, &usage) {
		t.Errorf("-now yesterday: %v, want a usage error", err)
	}
}
