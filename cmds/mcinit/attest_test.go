package main

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/attest"
	"github.com/mcinit/mcinit/boot"
	"github.com/mcinit/mcinit/decide"
	"github.com/mcinit/mcinit/identity"
	"github.com/mcinit/mcinit/measure"
	"github.com/mcinit/mcinit/policy"
	"github.com/mcinit/mcinit/signing"
	"github.com/mcinit/mcinit/tpmdev/swtpm"
)

// signedPolicy writes a policy, its signature and a one-key key set.
func signedPolicy(t *testing.T, dir string) (polFile, keysDir string) {
	t.Helper()
	k, err := signing.GenerateKey(signing.AlgEd25519)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := signing.PublicKeyFrom(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	pemb, _ := pub.MarshalPEM()
	keysDir = filepath.Join(dir, "keys")
	os.MkdirAll(keysDir, 0o755)
	os.WriteFile(filepath.Join(keysDir, "rel.pem"), pemb, 0o644)
	os.WriteFile(filepath.Join(keysDir, "keyset.toml"), []byte("threshold = 1\n"), 0o644)
	polFile = filepath.Join(dir, "policy.toml")
	doc := testPolicy(t, 20261201, []string{"qemu-x86_64"}, func(p *policy.Policy) {
		p.PCR = policy.DefaultPCR
		p.Production.Roots[0].DataBlocks = 1
		p.Development.AllowBoards = []string{"qemu-x86_64"}
	})
	os.WriteFile(polFile, doc, 0o644)
	sig, err := signing.Sign(k, doc)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(polFile+".sig", signing.FormatSignatures([]signing.Signature{sig}), 0o644)
	return polFile, keysDir
}

// TestAttestVerbs runs the verbs end to end against swtpm: predict, a
// simulated /init (Recorder), attest, verify; and a secret sealed with
// tpm2-tools to `predict -format tpm2` that `unseal` opens only in production.
func TestAttestVerbs(t *testing.T) {
	sw := swtpm.Start(t, swtpm.Config{})
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	polFile, keysDir := signedPolicy(t, dir)
	id := identity.Identity{Source: identity.SourceDMI, Arch: "amd64", SysVendor: "QEMU", Serial: "42"}
	ident := id.String()
	common := []string{"-policy", polFile, "-keys", keysDir, "-board", "qemu-x86_64", "-identity", ident}
	var usage usageError
	if err := runPredict([]string{"-policy", polFile, "-keys", keysDir, "-board", "qemu-x86_64", "-identity", "bogus"}); !errors.As(err, &usage) {
		t.Errorf("predict -identity bogus: %v, want a usage error", err)
	}

	if err := runPredict(append(common, "-format", "tpm2", "-o", p("pcr.bin"))); err != nil {
		t.Fatal(err)
	}
	if err := runAttest([]string{"-tpm", sw.Addr(), "-ak-pub-out", p("ak.pem"), "-ek-pub-out", p("ek.pem")}); err != nil {
		t.Fatal(err)
	}
	// Enrollment: the AK is bound to the EK by credential activation.
	if err := runEnroll([]string{"challenge", "-ek", p("ek.pem"), "-ak", p("ak.pem"), "-out", p("challenge"), "-secret-out", p("challenge.secret")}); err != nil {
		t.Fatal(err)
	}
	answer := captureStdout(t, func() error { return runAttest([]string{"-tpm", sw.Addr(), "-activate", p("challenge")}) })
	if err := runEnroll([]string{"check", "-secret", p("challenge.secret"), "-answer", answer}); err != nil {
		t.Errorf("enroll check: %v", err)
	}
	var rej rejectedError
	if err := runEnroll([]string{"check", "-secret", p("challenge.secret"), "-answer", "00"}); !errors.As(err, &rej) {
		t.Errorf("enroll check of a wrong answer: %v", err)
	}
	secret := []byte("prod secret")
	os.WriteFile(p("secret"), secret, 0o600)
	for _, args := range [][]string{
		{"tpm2_createprimary", "-C", "o", "-g", "sha256", "-G", "ecc256:null:aes128cfb",
			"-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt", "-c", p("parent.ctx")},
		{"tpm2_createpolicy", "--policy-pcr", "-l", "sha256:13", "-f", p("pcr.bin"), "-L", p("pcr.policy")},
		{"tpm2_create", "-C", p("parent.ctx"), "-L", p("pcr.policy"), "-i", p("secret"), "-u", p("seal.pub"), "-r", p("seal.priv")},
		{"tpm2_flushcontext", "-t"},
	} {
		if out, err := sw.Tool(args...); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}

	raw, _ := os.ReadFile(polFile)
	ks, _ := signing.LoadKeySetDir(keysDir)
	for _, prof := range []decide.Profile{decide.Production, decide.Development} {
		sw.Restart()
		// What /init does.
		ids, threshold := boot.KeyIDs(ks)
		b := boot.Facts{PolicyRaw: raw, KeyIDs: ids, Threshold: threshold, Board: "qemu-x86_64", Identity: id,
			Decision: decide.Facts{Request: decide.RequestNone, Profile: decide.Production, Reason: decide.ReasonDefault},
			Root:     measure.Root{Kind: measure.RootVerity, RootHash: "4f2d9c1e8b7a6f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6"}}
		if prof == decide.Development {
			b.Decision = decide.Facts{Request: decide.RequestDevelopment, Profile: decide.Development, Reason: decide.ReasonDevBoard}
			b.Root = measure.Root{Kind: measure.RootOverlay, RootHash: b.Root.RootHash, Upper: "tmpfs"}
		}
		tpm := sw.Open()
		r, err := measure.NewRecorder(tpm, 13)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range b.Events() {
			if err := r.Record(ev); err != nil {
				t.Fatal(err)
			}
		}
		tpm.Close()
		logf := p(string(prof) + ".log")
		if err := r.WriteLog(logf); err != nil {
			t.Fatal(err)
		}

		nonce := hex.EncodeToString([]byte("nonce-" + prof))
		out := p(string(prof) + "-quote")
		if err := runAttest([]string{"-tpm", sw.Addr(), "-nonce", nonce, "-out", out, "-log", logf, "-fw-log", p("no-firmware-log")}); err != nil {
			t.Fatal(err)
		}
		// The swtpm has no firmware: mcinit's PCR alone, allowed explicitly.
		if err := runVerify([]string{"-quote-dir", out, "-nonce", nonce, "-ak", p("ak.pem"), "-policy", polFile, "-keys", keysDir, "-allow-unanchored", "-require-profile", string(prof)}); err != nil {
			t.Errorf("%s: verify: %v", prof, err)
		}
		var re rejectedError
		if err := runVerify([]string{"-quote-dir", out, "-nonce", "00", "-ak", p("ak.pem"), "-policy", polFile, "-keys", keysDir, "-allow-unanchored"}); !errors.As(err, &re) {
			t.Errorf("%s: verify with a wrong nonce: %v, want a rejection (exit 3)", prof, err)
		}
		if prof == decide.Development {
			if err := runVerify([]string{"-quote-dir", out, "-nonce", nonce, "-ak", p("ak.pem"), "-policy", polFile, "-keys", keysDir, "-allow-unanchored", "-require-profile", "production"}); !errors.As(err, &re) {
				t.Errorf("development passed -require-profile production: %v", err)
			}
		}
		// Issue 10: without a firmware chain, never ok unless allowed (exit 4).
		err = runVerify([]string{"-quote-dir", out, "-nonce", nonce, "-ak", p("ak.pem"), "-policy", polFile, "-keys", keysDir, "-require-profile", string(prof)})
		if c := exitCode("verify", err); c != exitUnanchored {
			t.Errorf("%s: unanchored evidence: exit %d (%v), want %d", prof, c, err, exitUnanchored)
		}
		// Issue 11 item 8: trusted keys are required (usage error without).
		err = runVerify([]string{"-quote-dir", out, "-nonce", nonce, "-ak", p("ak.pem"), "-policy", polFile, "-allow-unanchored"})
		if c := exitCode("verify", err); c != exitUsage {
			t.Errorf("%s: verify without -keys: exit %d (%v), want %d", prof, c, err, exitUsage)
		}
		if err := runVerify([]string{"-quote-dir", out, "-nonce", nonce, "-ak", p("ak.pem"), "-policy", polFile, "-insecure-no-keys", "-allow-unanchored"}); err != nil {
			t.Errorf("%s: verify -insecure-no-keys: %v", prof, err)
		}
		// Missing or oversized evidence: its own class (exit 5).
		err = runVerify([]string{"-quote-dir", p("nowhere"), "-nonce", nonce, "-ak", p("ak.pem"), "-policy", polFile, "-keys", keysDir})
		if c := exitCode("verify", err); c != exitEvidence {
			t.Errorf("%s: missing evidence: exit %d (%v), want %d", prof, c, err, exitEvidence)
		}
		big := p("big-quote")
		os.MkdirAll(big, 0o755)
		for _, f := range []string{attest.FileQuote, attest.FileSig, attest.FileEventLog} {
			b, _ := os.ReadFile(filepath.Join(out, f))
			os.WriteFile(filepath.Join(big, f), b, 0o644)
		}
		os.WriteFile(filepath.Join(big, attest.FileQuote), make([]byte, attest.MaxQuoteSize+1), 0o644)
		err = runVerify([]string{"-quote-dir", big, "-nonce", nonce, "-ak", p("ak.pem"), "-policy", polFile, "-keys", keysDir})
		if c := exitCode("verify", err); c != exitEvidence {
			t.Errorf("%s: oversized quote: exit %d (%v), want %d", prof, c, err, exitEvidence)
		}

		// predict agrees with the device's PCR.
		ev, err := attest.ReadDir(out)
		if err != nil {
			t.Fatal(err)
		}
		var pred bytes.Buffer
		args := append(common, "-profile", string(prof), "-o", p("pred.txt"))
		if err := runPredict(args); err != nil {
			t.Fatal(err)
		}
		pt, _ := os.ReadFile(p("pred.txt"))
		pred.Write(pt)
		for _, v := range ev.PCRs {
			if v.Index == 13 && v.Bank == crypto.SHA256 && !strings.Contains(pred.String(), hex.EncodeToString(v.Value)) {
				t.Errorf("%s: device PCR %x not in predict output:\n%s", prof, v.Value, pred.String())
			}
		}

		err = runUnseal([]string{"-tpm", sw.Addr(), "-pub", p("seal.pub"), "-priv", p("seal.priv"), "-o", p("out.secret")})
		got, _ := os.ReadFile(p("out.secret"))
		os.Remove(p("out.secret"))
		switch {
		case prof == decide.Production && (err != nil || !bytes.Equal(got, secret)):
			t.Errorf("production unseal: %q %v", got, err)
		case prof == decide.Development && err == nil:
			t.Errorf("development unsealed the production secret")
		}
	}
}

// captureStdout runs f and returns what it printed, trimmed; f must succeed.
func captureStdout(t *testing.T, f func() error) string {
	t.Helper()
	out, err := capture(t, f)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}
