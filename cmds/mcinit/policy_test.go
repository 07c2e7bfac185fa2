package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/policy"
	"github.com/mcinit/mcinit/signing"
)

// TestPolicyVerbs drives keygen, policy, grant and decide in-process and
// checks their exit codes; openssl signs one of the policy's signatures.
func TestPolicyVerbs(t *testing.T) {
	dir := t.TempDir()
	in := func(n string) string { return filepath.Join(dir, n) }
	code := func(name string, args ...string) int {
		t.Helper()
		return exitCode(name, verbs[name].run(args))
	}
	must := func(name string, args ...string) {
		t.Helper()
		if c := code(name, args...); c != exitOK {
			t.Fatalf("mcinit %s %q: exit %d", name, args, c)
		}
	}
	must("keygen", "-out", in("a"))
	must("keygen", "-type", "ecdsa-p256", "-out", in("b"))
	if c := code("keygen", "-out", in("a")); c != exitError {
		t.Errorf("keygen over an existing key: exit %d", c)
	}
	if c := code("keygen", "-type", "rsa", "-out", in("c")); c != exitUsage {
		t.Errorf("keygen -type rsa: exit %d", c)
	}
	if st, err := os.Stat(in("a.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("a.key mode: %v %v", st, err)
	}
	keys := in("keys")
	if err := os.Mkdir(keys, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b"} {
		b, _ := os.ReadFile(in(k + ".pub"))
		os.WriteFile(filepath.Join(keys, k+".pem"), b, 0o644)
	}
	os.WriteFile(filepath.Join(keys, "keyset.toml"), []byte("threshold = 2\n"), 0o644)

	sample, err := os.ReadFile("../../policy/testdata/sample-policy.toml")
	if err != nil {
		t.Fatal(err)
	}
	pol := in("p.toml")
	os.WriteFile(pol, sample, 0o644)
	must("policy", "sign", "-key", in("a.key"), pol)
	if c := code("policy", "sign", "-key", in("a.key"), pol); c != exitError {
		t.Errorf("signing twice with one key: exit %d", c)
	}
	if c := code("policy", "verify", "-keys", keys, pol); c != exitRejected {
		t.Errorf("1 of 2 signatures verified: exit %d", c)
	}
	// The second signature comes from openssl, as a raw DER ECDSA signature.
	out, err := exec.Command("openssl", "dgst", "-sha256", "-sign", in("b.key"), "-out", in("b.sig"), pol).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	if c := code("policy", "sign", "-raw-signature", in("b.sig"), "-pubkey", in("a.pub"), pol); c != exitRejected {
		t.Errorf("raw signature with the wrong public key: exit %d", c)
	}
	must("policy", "sign", "-raw-signature", in("b.sig"), "-pubkey", in("b.pub"), pol)
	must("policy", "verify", "-keys", keys, pol)
	must("policy", "show", "-keys", keys, pol)
	if c := code("policy", "bogus"); c != exitUsage {
		t.Errorf("unknown subcommand: exit %d", c)
	}

	must("grant", "-board", "qemu-x86_64", "-device", "SN-1", "-max-version", "7", "-key", in("a.key"), "-out", in("g.toml"))
	if c := code("grant", "verify", "-keys", keys, in("g.toml")); c != exitRejected {
		t.Errorf("grant with 1 of 2 signatures: exit %d", c)
	}
	must("grant", "sign", "-key", in("b.key"), in("g.toml"))
	must("grant", "verify", "-keys", keys, in("g.toml"))
	if c := code("grant", "-board", "Bad Board", "-device", "x", "-max-version", "7", "-key", in("a.key"), "-out", in("h.toml")); c != exitUsage {
		t.Errorf("grant for a bad board name: exit %d", c)
	}
	if c := code("grant", "-board", "qemu-x86_64", "-device", "x", "-key", in("a.key"), "-out", in("h.toml")); c != exitUsage {
		t.Errorf("grant without -max-version: exit %d", c)
	}

	base := []string{"-policy", pol, "-keys", keys, "-floor", "7"}
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"-board", "qemu-x86_64"}, exitOK},
		{[]string{"-board", "qemu-x86_64", "-device", "SN-1", "-cmdline", "mcinit.profile=development", "-grant", in("g.toml")}, exitOK},
		{[]string{"-board", "qemu-x86_64", "-device", "SN-2", "-cmdline", "mcinit.profile=development"}, exitOK},
		{[]string{"-board", "rpi4"}, exitRejected},
		{[]string{"-board", "qemu-x86_64", "-floor", "8"}, exitRejected},
		{[]string{"-board", "qemu-x86_64", "-floor", "x"}, exitUsage},
		{[]string{"-board", "qemu-x86_64", "-cmdline", "a\x00b"}, exitError},
	} {
		if c := code("decide", append(append([]string(nil), base...), tc.args...)...); c != tc.want {
			t.Errorf("decide %s: exit %d, want %d", strings.Join(tc.args, " "), c, tc.want)
		}
	}
	os.WriteFile(pol, append(sample, '\n'), 0o644)
	if c := code("decide", append(base, "-board", "qemu-x86_64")...); c != exitRejected {
		t.Errorf("decide on a modified policy: exit %d", c)
	}
}

// TestPolicyResettablePCR: `policy sign` refuses a policy on a PCR that
// locality 0 can reset (16, 23), and `policy verify` refuses one that was
// signed anyway (issue 11 item 1).
func TestPolicyResettablePCR(t *testing.T) {
	dir := t.TempDir()
	in := func(n string) string { return filepath.Join(dir, n) }
	code := func(name string, args ...string) int {
		t.Helper()
		return exitCode(name, verbs[name].run(args))
	}
	if c := code("keygen", "-out", in("a")); c != exitOK {
		t.Fatalf("keygen: exit %d", c)
	}
	keys := in("keys")
	os.Mkdir(keys, 0o755)
	pub, _ := os.ReadFile(in("a.pub"))
	os.WriteFile(filepath.Join(keys, "a.pem"), pub, 0o644)
	os.WriteFile(filepath.Join(keys, "keyset.toml"), []byte("threshold = 1\n"), 0o644)
	for _, pcr := range []int{16, 23} {
		pol := in(fmt.Sprintf("p%d.toml", pcr))
		os.WriteFile(pol, testPolicy(t, 1, []string{"qemu-x86_64"}, func(p *policy.Policy) { p.PCR = pcr }), 0o644)
		if c := code("policy", "sign", "-key", in("a.key"), pol); c == exitOK {
			t.Errorf("policy sign with pcr %d: exit %d", pcr, c)
		}
		if _, err := os.Stat(pol + ".sig"); err == nil {
			t.Errorf("policy sign with pcr %d wrote a signature", pcr)
		}
		// Signed anyway, behind the verb's back: verify must still refuse.
		kb, _ := os.ReadFile(in("a.key"))
		priv, err := signing.ParsePrivateKeyPEM(kb)
		if err != nil {
			t.Fatal(err)
		}
		doc, _ := os.ReadFile(pol)
		sig, err := signing.Sign(priv, doc)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(pol+".sig", signing.FormatSignatures([]signing.Signature{sig}), 0o644)
		if c := code("policy", "verify", "-keys", keys, pol); c != exitRejected {
			t.Errorf("policy verify with pcr %d: exit %d, want %d", pcr, c, exitRejected)
		}
	}
}

// TestDecideGenericBoard: `mcinit decide -board generic-x86_64` boots only
// under allow_unknown_boards. A policy naming a generic board in `boards`
// (the old sample's setup) is refused by sign, verify and decide.
func TestDecideGenericBoard(t *testing.T) {
	dir := t.TempDir()
	in := func(n string) string { return filepath.Join(dir, n) }
	code := func(name string, args ...string) int {
		t.Helper()
		return exitCode(name, verbs[name].run(args))
	}
	if c := code("keygen", "-out", in("a")); c != exitOK {
		t.Fatalf("keygen: exit %d", c)
	}
	keys := in("keys")
	os.Mkdir(keys, 0o755)
	pub, _ := os.ReadFile(in("a.pub"))
	os.WriteFile(filepath.Join(keys, "a.pem"), pub, 0o644)
	os.WriteFile(filepath.Join(keys, "keyset.toml"), []byte("threshold = 1\n"), 0o644)
	kb, _ := os.ReadFile(in("a.key"))
	priv, err := signing.ParsePrivateKeyPEM(kb)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, boards []string, unknown bool) string {
		p := in(name)
		doc := testPolicy(t, 1, boards, func(p *policy.Policy) { p.AllowUnknownBoards = unknown })
		os.WriteFile(p, doc, 0o644)
		sig, err := signing.Sign(priv, doc)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(p+".sig", signing.FormatSignatures([]signing.Signature{sig}), 0o644)
		return p
	}
	for _, tc := range []struct {
		name    string
		boards  []string
		unknown bool
		want    int
	}{
		{"listed, unknown not allowed", []string{"qemu-x86_64", "generic-x86_64"}, false, exitRejected},
		{"listed, unknown allowed", []string{"generic-x86_64"}, true, exitRejected},
		{"not listed, unknown not allowed", []string{"qemu-x86_64"}, false, exitRejected},
		{"not listed, unknown allowed", []string{"qemu-x86_64"}, true, exitOK},
	} {
		p := write(strings.ReplaceAll(tc.name, " ", "_")+".toml", tc.boards, tc.unknown)
		if c := code("decide", "-policy", p, "-keys", keys, "-board", "generic-x86_64"); c != tc.want {
			t.Errorf("%s: decide -board generic-x86_64: exit %d, want %d", tc.name, c, tc.want)
		}
	}
}
