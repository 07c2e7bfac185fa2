package e2e

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcinit/mcinit/e2e/fixture"
	"github.com/mcinit/mcinit/fwlog"
)

// OVMF with Secure Boot enforcing and Debian's test keys (ovmf package).
const (
	ovmfCode     = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
	ovmfVars     = "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd"
	snakeoilKey  = "/usr/share/ovmf/PkKek-1-snakeoil.key" // passphrase "snakeoil"
	snakeoilCert = "/usr/share/ovmf/PkKek-1-snakeoil.pem"
)

// TestChainDirectBootUnanchored boots the production unit through real
// firmware — OVMF, Secure Boot enforcing, the kernel signed with the
// snakeoil db key — but by direct kernel boot (QEMU -kernel/-initrd, no
// UKI), as an attacker with an rdinit= or a replaced initramfs would.
// The guest's `mcinit attest` sends the firmware's log with the quote of
// PCRs 0-7, 11, 12, 13. On the host:
//   - tpm2_eventlog parses the firmware log, and fwlog reads Secure Boot on;
//   - mcinit verify -require-profile production: verdict unanchored, exit 4,
//     naming the missing stub events in PCR 11 — even though PCR 13 holds a
//     genuine production boot, nothing anchors who extended it;
//   - with -allow-unanchored: ok, verdict still "unanchored";
//   - a firmware log that does not replay (one PCR 0 digest changed):
//     rejected, exit 3, log-replay naming PCR 0.
func TestChainDirectBootUnanchored(t *testing.T) {
	e := env(t, "amd64")
	ctx := context.Background()
	requireTools(t, "sbsign", "openssl", "swtpm", "tpm2_eventlog")
	for _, f := range []string{ovmfCode, ovmfVars, snakeoilKey, snakeoilCert} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%s missing (Debian package ovmf): %v", f, err)
		}
	}
	initrd, err := e.PolicyVariant(ctx, "attest", e.DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	pol := filepath.Join(e.Dir, "attest.toml")
	work := t.TempDir()
	w := func(n string) string { return filepath.Join(work, n) }

	// Sign the kernel with the snakeoil db key; Secure Boot then starts it.
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
	}
	run("openssl", "pkey", "-in", snakeoilKey, "-passin", "pass:snakeoil", "-out", w("db.key"))
	run("sbsign", "--key", w("db.key"), "--cert", snakeoilCert, "--output", w("vmlinuz.signed"), e.Kernel)
	vars, err := os.ReadFile(ovmfVars)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w("vars.fd"), vars, 0o644); err != nil {
		t.Fatal(err)
	}

	nonce := randomNonce(t)
	m := deviceMachine(t, e, "chain-direct-ovmf", initrd, t.TempDir(), "",
		"exec="+guestMCInit+" attest -nonce "+nonce+" -out /run/q",
		"exec="+guestMCInit+" attest -ak-pub-out /run/q/enrolled-ak.pem",
		"dump-dir=/run/q")
	m.Kernel = w("vmlinuz.signed")
	m.Timeout = 10 * time.Minute // OVMF under TCG on a loaded machine
	m.ExtraArgs = append(m.ExtraArgs,
		"-machine", "smm=on",
		"-global", "driver=cfi.pflash01,property=secure,value=on",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+ovmfCode,
		"-drive", "if=pflash,format=raw,unit=1,file="+w("vars.fd"))
	r := boot(t, m)
	wantReport(t, r, map[string]string{"profile": "production", "action.0.exec.rc": "0", "action.1.exec.rc": "0"})
	q := evidence(t, r, 2, w("q"))
	ak := filepath.Join(q, "enrolled-ak.pem")

	fwb, err := os.ReadFile(filepath.Join(q, "fwlog.bin"))
	if err != nil {
		t.Fatalf("the guest sent no firmware log: %v", err)
	}
	if out, err := exec.Command("tpm2_eventlog", filepath.Join(q, "fwlog.bin")).CombinedOutput(); err != nil {
		t.Errorf("tpm2_eventlog on the firmware log: %v\n%s", err, out)
	}
	fw, err := fwlog.Parse(fwb)
	if err != nil {
		t.Fatal(err)
	}
	if sb, err := fw.SecureBoot(); err != nil || !sb.Enabled {
		t.Errorf("firmware log: Secure Boot %+v %v, want on", sb, err)
	}

	verifyArgs := []string{"verify", "-quote-dir", q, "-nonce", nonce, "-ak", ak, "-policy", pol, "-keys", e.KeysDir, "-require-profile", "production"}
	out, err := e.Run(ctx, verifyArgs...)
	v := &verdict{}
	_ = json.Unmarshal([]byte(out), v)
	if err == nil || !strings.Contains(err.Error(), "exit status 4") || v.Verdict != "unanchored" || !failed(v, "anchor") ||
		!strings.Contains(out, "no systemd stub events in PCR 11") || v.Profile != "production" {
		t.Errorf("direct boot: verify %v, verdict %q, profile %q\n%s", err, v.Verdict, v.Profile, out)
	}
	out, err = e.Run(ctx, append(verifyArgs, "-allow-unanchored")...)
	v = &verdict{}
	_ = json.Unmarshal([]byte(out), v)
	if err != nil || !v.OK || v.Verdict != "unanchored" {
		t.Errorf("direct boot, -allow-unanchored: %v, verdict %q\n%s", err, v.Verdict, out)
	}

	// A firmware log that does not replay: the first PCR 0 event's SHA-256
	// digest changed.
	var d []byte
	for _, rec := range fw.Records {
		if rec.PCR == 0 && rec.Type != fwlog.EvNoAction {
			d = fw.Digest(rec, sha256Hash)
			break
		}
	}
	bad := bytes.Replace(fwb, d, bytes.Repeat([]byte{0xee}, len(d)), 1)
	if err := os.WriteFile(filepath.Join(q, "fwlog.bin"), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = e.Run(ctx, append(verifyArgs, "-allow-unanchored")...)
	v = &verdict{}
	_ = json.Unmarshal([]byte(out), v)
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !failed(v, "log-replay") || !strings.Contains(out, "PCR 0 (sha256)") {
		t.Errorf("non-replaying firmware log: %v, verdict %q\n%s", err, v.Verdict, out)
	}
}

const sha256Hash = crypto.SHA256

// TestChainSecureBootUKI: the production unit boots a signed UKI from its
// ESP through OVMF with Secure Boot enforcing; the guest attests. On the
// host `mcinit verify -uki` (and -golden, from `mcinit predict -uki`) says
// ok with the whole chain: Secure Boot on, that UKI started (PCR 4) and
// measured (PCR 11), nothing in PCR 12, mcinit's PCR replayed. Given only
// another fleet UKI, verify rejects naming PCR 4 and PCR 11 (exit 3).
// tpm2_eventlog parses both logs the guest sent.
func TestChainSecureBootUKI(t *testing.T) {
	e := env(t, "amd64")
	ctx := context.Background()
	requireTools(t, "swtpm", "tpm2_eventlog")
	initrd, err := e.PolicyVariant(ctx, "attest", e.DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	pol := filepath.Join(e.Dir, "attest.toml")
	work := t.TempDir()
	w := func(n string) string { return filepath.Join(work, n) }

	// The actions ride in the UKI's own command line (nothing can be
	// passed from outside under Secure Boot).
	nonce := randomNonce(t)
	cmdline := e.UKICmdline(`"mcinit_test.action=exec=` + guestMCInit + ` attest -nonce ` + nonce + ` -out /run/q" ` +
		`"mcinit_test.action=exec=` + guestMCInit + ` attest -ak-pub-out /run/q/enrolled-ak.pem" "mcinit_test.action=dump-dir=/run/q"`)
	efi, err := e.UKI(ctx, "chain-production", initrd, cmdline, fixture.Snakeoil)
	if err != nil {
		t.Fatal(err)
	}
	disk, err := e.UEFIDisk("chain-production", efi)
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.UEFIMachine("chain-production", disk, fixture.DevSerial)
	if err != nil {
		t.Fatal(err)
	}
	m.TPMStateDir = t.TempDir()
	r := boot(t, m)
	wantReport(t, r, map[string]string{"profile": "production", "action.0.exec.rc": "0", "action.1.exec.rc": "0"})
	q := evidence(t, r, 2, w("q"))
	ak := filepath.Join(q, "enrolled-ak.pem")
	for _, f := range []string{"fwlog.bin", "eventlog.bin"} {
		if out, err := exec.Command("tpm2_eventlog", filepath.Join(q, f)).CombinedOutput(); err != nil {
			t.Errorf("tpm2_eventlog %s: %v\n%s", f, err, out)
		}
	}

	base := []string{"verify", "-quote-dir", q, "-nonce", nonce, "-ak", ak, "-policy", pol, "-keys", e.KeysDir, "-require-profile", "production"}
	type chainVerdict struct {
		verdict
		Anchor     string `json:"anchor"`
		UKI        string `json:"uki"`
		SecureBoot *bool  `json:"secure_boot"`
	}
	check := func(name string, args ...string) (*chainVerdict, error) {
		t.Helper()
		out, err := e.Run(ctx, append(base, args...)...)
		v := &chainVerdict{}
		if jerr := json.Unmarshal([]byte(out), v); jerr != nil {
			t.Fatalf("%s: verdict JSON: %v\n%s", name, jerr, out)
		}
		t.Logf("%s: %v\n%s", name, err, out)
		return v, err
	}
	v, err := check("fleet UKI", "-uki", efi)
	if err != nil || !v.OK || v.Verdict != "ok" || v.Anchor != "firmware" || v.UKI != filepath.Base(efi) || v.SecureBoot == nil || !*v.SecureBoot {
		t.Errorf("full chain: %v, verdict %q anchor %q uki %q", err, v.Verdict, v.Anchor, v.UKI)
	}
	if _, err := e.Run(ctx, "predict", "-uki", efi, "-banks", "sha1,sha256,sha384,sha512", "-format", "json", "-o", w("golden.json")); err != nil {
		t.Fatal(err)
	}
	if v, err := check("golden values", "-golden", w("golden.json")); err != nil || v.Verdict != "ok" {
		t.Errorf("-golden: %v, verdict %q", err, v.Verdict)
	}

	// Another fleet UKI (another command line) is not what booted.
	other, err := e.UKI(ctx, "chain-other", initrd, e.UKICmdline("mcinit_test.other=1"), fixture.Snakeoil)
	if err != nil {
		t.Fatal(err)
	}
	v, err = check("other UKI", "-uki", other)
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !failed(&v.verdict, "boot-image") || !failed(&v.verdict, "uki-sections") {
		t.Errorf("other UKI: %v, verdict %q", err, v.Verdict)
	}
}
