package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mcinit/mcinit/attest"
	"github.com/mcinit/mcinit/e2e/fixture"
	"github.com/mcinit/mcinit/e2e/harness"
	"github.com/mcinit/mcinit/measure"
)

// The attack of issue 10, carried out: an attacker's init (e2e/forger)
// runs instead of mcinit and extends, from public inputs, exactly the
// production event sequence `mcinit predict` prints into mcinit's PCR,
// then hands out evidence as `mcinit attest` does. PCR 13 then holds the
// genuine production value; only the firmware chain tells the boots apart.

// forgedVerdict is the part of the verdict JSON these tests read.
type forgedVerdict struct {
	verdict
	Identity   string `json:"identity"`
	Anchor     string `json:"anchor"`
	SecureBoot *bool  `json:"secure_boot"`
}

// forgedBoot boots m (whose command line has rdinit=fixture.ForgerInit and
// fixture.AttestActions) and returns the evidence directory. It checks that
// the forger ran and that nothing of mcinit did.
func forgedBoot(t *testing.T, m harness.Machine) string {
	t.Helper()
	r := boot(t, m)
	wantReport(t, r, map[string]string{"action.0.exec.rc": "0", "action.1.exec.rc": "0", "profile": "absent"})
	if !r.Has("forger: extended the ") || r.Has("forger: FAILED") {
		t.Fatalf("the forger did not forge (log %s)", r.LogPath)
	}
	if len(r.Mcinit) != 0 {
		t.Errorf("mcinit's /init ran: %q", r.Mcinit[0].Text)
	}
	q := filepath.Join(t.TempDir(), "q")
	if err := fixture.Evidence(r, 2, q); err != nil {
		t.Fatal(err)
	}
	return q
}

// runVerify runs mcinit verify on evidence q with the default policy and
// args; it returns the verdict and mcinit's error (stderr included).
func runVerify(t *testing.T, e *fixture.Env, q, nonce string, args ...string) (*forgedVerdict, error) {
	t.Helper()
	base := []string{"verify", "-quote-dir", q, "-nonce", nonce, "-ak", filepath.Join(q, "enrolled-ak.pem"),
		"-policy", filepath.Join(e.Dir, "policy.toml"), "-keys", e.KeysDir}
	out, err := e.Run(context.Background(), append(base, args...)...)
	v := &forgedVerdict{}
	if jerr := json.Unmarshal([]byte(out), v); jerr != nil {
		t.Fatalf("verdict JSON: %v (%v)\n%s", jerr, err, out)
	}
	t.Logf("mcinit verify %s: %v\n%s", strings.Join(args, " "), err, out)
	return v, err
}

// failedChecks lists the verdict's failed checks by name, sorted.
func failedChecks(v *verdict) []string {
	var out []string
	for _, c := range v.Checks {
		if !c.OK {
			out = append(out, c.Name)
		}
	}
	sort.Strings(out)
	return out
}

func checkDetail(v *verdict, name string) string {
	for _, c := range v.Checks {
		if c.Name == name {
			return c.Detail
		}
	}
	return ""
}

// wantForgedProduction checks that the forgery succeeded: the quoted PCR
// (mcinit's log replays to it, the log is one clean production boot) is
// what `mcinit predict` gives for this unit's production boot under the
// fleet policy.
func wantForgedProduction(t *testing.T, e *fixture.Env, q string, v *forgedVerdict) {
	t.Helper()
	passed := map[string]bool{}
	for _, c := range v.Checks {
		passed[c.Name] = c.OK
	}
	for _, c := range []string{"ak-signature", "nonce", "log-replay", "pcrs-file", "event-sequence", "policy-known", "keyset", "board", "decision", "root"} {
		if !passed[c] {
			t.Errorf("check %s did not pass (%q): the forged log is not a clean production boot", c, checkDetail(&v.verdict, c))
		}
	}
	if v.Profile != "production" || v.Identity == "" {
		t.Fatalf("verdict profile %q identity %q: want the forged production boot", v.Profile, v.Identity)
	}
	b, err := os.ReadFile(filepath.Join(q, "pcrs.txt"))
	if err != nil {
		t.Fatal(err)
	}
	vals, err := attest.ParsePCRs(b)
	if err != nil {
		t.Fatal(err)
	}
	var banks []string
	for _, x := range vals {
		if n := measure.BankName(x.Bank); !slices.Contains(banks, n) {
			banks = append(banks, n)
		}
	}
	pred, err := e.Predict(context.Background(), filepath.Join(e.Dir, "policy.toml"), v.Identity, "production", strings.Join(banks, ","))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, x := range vals {
		if x.Index != pred.PCR {
			continue
		}
		n++
		b := measure.BankName(x.Bank)
		if got := hex.EncodeToString(x.Value); got != pred.Values[b] {
			t.Errorf("forged %s:%d = %s, mcinit predict (production) %s: the forgery failed", b, x.Index, got, pred.Values[b])
		} else {
			t.Logf("forged %s:%d = %s = mcinit predict's production value", b, x.Index, got)
		}
	}
	if n == 0 {
		t.Errorf("pcrs.txt has no PCR %d", pred.PCR)
	}
}

// TestForgedPCRNoSecureBootUKI: firmware without Secure Boot (OVMF, AAVMF)
// starts the attacker's own UKI (unsigned; its initramfs and command line
// run the forger). PCR 13 is forged to the production value — asserted
// against `mcinit predict` — and mcinit verify, given the fleet's
// production UKI, rejects (exit 3) for exactly these causes: Secure Boot
// was off (PCR 7), the started image is not a fleet UKI (PCR 4), and the
// stub measured other sections (PCR 11).
func TestForgedPCRNoSecureBootUKI(t *testing.T) {
	uefiArches(t, func(t *testing.T, arch string) {
		e := env(t, arch)
		ctx := context.Background()
		requireTools(t, "swtpm")
		initrd, err := e.ForgerInitramfs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		fleet, err := e.UKI(ctx, "forge-fleet-production", e.Initrd, e.UKICmdline(""), fixture.Snakeoil)
		if err != nil {
			t.Fatal(err)
		}
		nonce := randomNonce(t)
		efi, err := e.UKI(ctx, "forge-attacker", initrd, e.UKICmdline("rdinit="+fixture.ForgerInit+" "+fixture.AttestActions(nonce)), fixture.Unsigned)
		if err != nil {
			t.Fatal(err)
		}
		disk, err := e.UEFIDisk("forge-attacker", efi)
		if err != nil {
			t.Fatal(err)
		}
		m, err := e.PlainUEFIMachine("forge-attacker", disk, fixture.OtherSerial)
		if err != nil {
			t.Fatal(err)
		}
		q := forgedBoot(t, m)

		v, err := runVerify(t, e, q, nonce, "-uki", fleet, "-require-profile", "production")
		wantForgedProduction(t, e, q, v)
		if err == nil || !strings.Contains(err.Error(), "exit status 3") || v.Verdict != "fail" || v.OK {
			t.Errorf("verify of the forged boot: %v, verdict %q; want rejected (exit 3)", err, v.Verdict)
		}
		if got, want := failedChecks(&v.verdict), []string{"boot-image", "secure-boot", "uki-sections"}; !slices.Equal(got, want) {
			t.Errorf("failed checks %v, want exactly %v", got, want)
		}
		for c, want := range map[string]string{
			"secure-boot":  "PCR 7: Secure Boot was off",
			"boot-image":   "PCR 4: the booted image's Authenticode digest",
			"uki-sections": "PCR 11: the stub measured sections",
		} {
			if d := checkDetail(&v.verdict, c); !strings.HasPrefix(d, want) {
				t.Errorf("check %s: %q, want it to start %q", c, d, want)
			}
		}
		if v.Anchor != "firmware" || v.SecureBoot == nil || *v.SecureBoot {
			t.Errorf("anchor %q, secure_boot %v: want the firmware chain read, Secure Boot off", v.Anchor, v.SecureBoot)
		}
	})
}

// TestForgedPCRDirectBoot: direct kernel boot (no UEFI firmware) of the
// production kernel with rdinit= pointing at the forger. PCR 13 is forged
// to the production value (asserted against mcinit predict); mcinit verify
// -require-profile production is not ok: verdict unanchored, exit 4, the
// anchor check the only failure, and exactly this verdict line on stderr.
func TestForgedPCRDirectBoot(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			t.Parallel()
			e := env(t, arch)
			ctx := context.Background()
			requireTools(t, "swtpm")
			initrd, err := e.ForgerInitramfs(ctx)
			if err != nil {
				t.Fatal(err)
			}
			nonce := randomNonce(t)
			m := e.Machine("forge-direct", initrd, e.Disk, fixture.OtherSerial, "rdinit="+fixture.ForgerInit+" "+fixture.AttestActions(nonce))
			m.Timeout = 10 * time.Minute // TCG on a loaded machine
			q := forgedBoot(t, m)

			v, err := runVerify(t, e, q, nonce, "-require-profile", "production")
			wantForgedProduction(t, e, q, v)
			// SeaBIOS (x86) measures into PCRs 0-7 and hands the kernel its
			// log, which has no stub events; aarch64's direct boot has no
			// firmware log at all.
			line := map[string]string{
				"amd64": "mcinit verify: attestation rejected: anchor: no systemd stub events in PCR 11: not booted from a UKI (direct kernel boot)",
				"arm64": "mcinit verify: attestation rejected: anchor: no firmware log in the evidence",
			}[arch]
			if err == nil || !strings.Contains(err.Error(), "exit status 4") || v.Verdict != "unanchored" || v.OK {
				t.Errorf("verify of the forged direct boot: %v, verdict %q; want unanchored (exit 4)", err, v.Verdict)
			}
			if got := failedChecks(&v.verdict); !slices.Equal(got, []string{"anchor"}) {
				t.Errorf("failed checks %v, want exactly [anchor]", got)
			}
			if err != nil && !strings.HasSuffix(err.Error(), "\n"+line) && !strings.HasSuffix(err.Error(), ": "+line) {
				t.Errorf("verify's stderr does not end in %q: %v", line, err)
			}
		})
	}
}
