package e2e

import (
	"bytes"
	"context"
	"crypto"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/attest"
	"github.com/mcinit/mcinit/e2e/fixture"
	"github.com/mcinit/mcinit/e2e/harness"
	"github.com/mcinit/mcinit/fwlog"
	"github.com/mcinit/mcinit/initramfs"
	"github.com/mcinit/mcinit/uki"
)

// Boots through real UEFI firmware (OVMF on x86_64, AAVMF on aarch64) with
// Secure Boot enforcing, Debian's test keys enrolled, a swtpm TPM, and the
// UKI on the ESP of the verity disk.

// uefiBoot builds the UKI (initramfs initrd, cmdline), puts it on a copy of
// the verity disk and boots it through Secure Boot firmware as unit serial.
func uefiBoot(t *testing.T, e *fixture.Env, name, initrd, cmdline string, s fixture.UKISigner, serial string) *harness.Result {
	t.Helper()
	ctx := context.Background()
	efi, err := e.UKI(ctx, name, initrd, cmdline, s)
	if err != nil {
		t.Fatal(err)
	}
	disk, err := e.UEFIDisk(name, efi)
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.UEFIMachine(name, disk, serial)
	if err != nil {
		t.Fatal(err)
	}
	return boot(t, m)
}

// wantSecureBootBoot checks that the firmware started the kernel with
// Secure Boot on, the real init ran, and the kernel's command line is the
// UKI's own, byte for byte. The guest's view of Secure Boot: the kernel's
// EFI stub and the kernel say so, and Debian's kernel locked itself down
// because of it (efivarfs is a module, not loadable in production).
func wantSecureBootBoot(t *testing.T, r *harness.Result, cmdline, profile string) {
	t.Helper()
	wantReport(t, r, map[string]string{
		"profile":  profile,
		"efi":      "yes",
		"cmdline":  cmdline,
		"lockdown": "none [integrity] confidentiality",
	})
	for _, l := range []string{"EFI stub: UEFI Secure Boot is enabled.", "secureboot: Secure boot enabled", "Kernel is locked down from EFI Secure Boot"} {
		if !r.Has(l) {
			t.Errorf("no %q on the console: the guest did not see Secure Boot (log %s)", l, r.LogPath)
		}
	}
}

// wantFirmwareRefusal checks that the firmware refused to start the image
// (EDK2: "BdsDxe: failed to load Boot#### ...: Access Denied", then no boot
// option left) and that no kernel ran.
func wantFirmwareRefusal(t *testing.T, r *harness.Result) {
	t.Helper()
	denied := false
	for _, l := range r.Lines {
		if strings.Contains(l.Text, "BdsDxe: failed to load") && strings.HasSuffix(l.Text, harness.FirmwareDenied) {
			denied = true
		}
	}
	if !denied {
		t.Errorf("no firmware 'Access Denied' line (outcome %s, log %s)", r.Outcome, r.LogPath)
	}
	if r.Outcome != harness.NoBoot {
		t.Errorf("outcome %s, want %s", r.Outcome, harness.NoBoot)
	}
	for _, s := range []string{"EFI stub:", "Linux version", harness.ReportBegin} {
		if r.Has(s) {
			t.Errorf("a kernel ran after the refusal: %q on the console", s)
		}
	}
}

func uefiArches(t *testing.T, f func(t *testing.T, arch string)) {
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			t.Parallel()
			f(t, arch)
		})
	}
}

// The signed production UKI boots production under Secure Boot.
func TestUEFISecureBootProduction(t *testing.T) {
	uefiArches(t, func(t *testing.T, arch string) {
		e := env(t, arch)
		cmdline := e.UKICmdline("")
		r := uefiBoot(t, e, "uefi-production", e.Initrd, cmdline, fixture.Snakeoil, fixture.OtherSerial)
		wantSecureBootBoot(t, r, cmdline, "production")
		wantReport(t, r, map[string]string{"root_writable": "no", "modules_disabled": "1"})
	})
}

// An unsigned UKI, and one signed by a key not in db: the firmware refuses.
func TestUEFIUnsignedRefused(t *testing.T) {
	uefiArches(t, func(t *testing.T, arch string) {
		e := env(t, arch)
		wantFirmwareRefusal(t, uefiBoot(t, e, "uefi-unsigned", e.Initrd, e.UKICmdline(""), fixture.Unsigned, fixture.OtherSerial))
	})
}

func TestUEFIOtherKeyRefused(t *testing.T) {
	uefiArches(t, func(t *testing.T, arch string) {
		e := env(t, arch)
		wantFirmwareRefusal(t, uefiBoot(t, e, "uefi-otherkey", e.Initrd, e.UKICmdline(""), fixture.OtherKey, fixture.OtherSerial))
	})
}

// A development UKI differs from the production one only in its command
// line; the signed policy still decides: development on the unit it
// allows, production elsewhere. On x86_64 the unit is allowed by its DMI
// serial (allow_devices); aarch64's virt board under AAVMF has no serial
// in its device tree, so there the allowed unit's policy allows its board
// (allow_boards) and the denied unit's does not.
func TestUEFIDevelopmentUKI(t *testing.T) {
	uefiArches(t, func(t *testing.T, arch string) {
		e := env(t, arch)
		cmdline := e.UKICmdline("mcinit.profile=development")
		allowed, serial := e.Initrd, fixture.DevSerial
		if arch == "arm64" {
			p := e.DefaultPolicy()
			p.DevBoards = []string{e.Board}
			var err error
			if allowed, err = e.PolicyVariant(context.Background(), "uefi-dev-boards", p); err != nil {
				t.Fatal(err)
			}
			serial = ""
		}
		for _, c := range []struct {
			name, initrd, serial, profile string
		}{
			{"allowed", allowed, serial, "development"},
			{"denied", e.Initrd, fixture.OtherSerial, "production"},
		} {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				r := uefiBoot(t, e, "uefi-dev-"+c.name, c.initrd, cmdline, fixture.Snakeoil, c.serial)
				wantSecureBootBoot(t, r, cmdline, c.profile)
				if c.profile == "production" && !r.Has("reason dev-denied") {
					t.Error("no dev-denied reason on the console")
				}
			})
		}
	})
}

// The attack of issue 10: a boot entry (here QEMU's -kernel/-append, which
// OVMF and AAVMF turn into a LoadImage of the UKI with the -append text as
// its load options) passes rdinit= to skip mcinit. Under Secure Boot the
// stub ignores load options when the UKI has a .cmdline: the kernel gets
// the UKI's command line and mcinit runs. The control boot, without Secure
// Boot, shows that the same path does deliver a command line.
func TestUEFIStubIgnoresCmdlineOverride(t *testing.T) {
	uefiArches(t, func(t *testing.T, arch string) {
		e := env(t, arch)
		ctx := context.Background()
		cmdline := e.UKICmdline("")
		efi, err := e.UKI(ctx, "uefi-override", e.Initrd, cmdline, fixture.Snakeoil)
		if err != nil {
			t.Fatal(err)
		}
		t.Run("secureboot", func(t *testing.T) {
			t.Parallel()
			m, err := e.UEFIMachine("uefi-override-sb", e.Disk, fixture.OtherSerial)
			if err != nil {
				t.Fatal(err)
			}
			m.Kernel, m.Append = efi, e.UKICmdline("rdinit=/bbin/gosh mcinit_test.override=1")
			r := boot(t, m)
			wantSecureBootBoot(t, r, cmdline, "production")
			if r.Has("Run /bbin/gosh as init process") {
				t.Error("the kernel ran the override's rdinit")
			}
		})
		t.Run("control-no-secureboot", func(t *testing.T) {
			t.Parallel()
			m, err := e.PlainUEFIMachine("uefi-override-plain", e.Disk, fixture.OtherSerial)
			if err != nil {
				t.Fatal(err)
			}
			override := e.UKICmdline("mcinit_test.override=1")
			m.Kernel, m.Append = efi, override
			r := boot(t, m)
			wantReport(t, r, map[string]string{"efi": "yes", "lockdown": "[none] integrity confidentiality", "cmdline": override, "profile": "production"})
			if !r.Has("secureboot: Secure boot disabled") {
				t.Errorf("the control boot did not run without Secure Boot (log %s)", r.LogPath)
			}
		})
	})
}

// An image whose policy never allows development carries no shell: the
// initramfs builder leaves the rescue commands out (-rescue auto).
func TestProductionOnlyImageHasNoShell(t *testing.T) {
	e := env(t, "amd64")
	ctx := context.Background()
	p := e.DefaultPolicy()
	p.DevDevices, p.DevBoards, p.DevGrants, p.RescueShell = nil, nil, false, false
	pol, err := e.SignPolicy(ctx, "production-only", p)
	if err != nil {
		t.Fatal(err)
	}
	out := e.Dir + "/production-only.cpio.gz"
	if _, err := e.Run(ctx, "initramfs", "-arch", e.Arch, "-policy", pol, "-keys", e.KeysDir, "-kernel", e.ModulesDir, "-o", out); err != nil {
		t.Fatal(err)
	}
	recs, err := readArchive(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		base := r[strings.LastIndex(r, "/")+1:]
		if base == "gosh" || base == "sh" || base == "elvish" || base == "bash" {
			t.Errorf("production-only image carries a shell: %s", r)
		}
	}
	if len(recs) == 0 {
		t.Fatal("empty archive")
	}
}

func readArchive(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	recs, err := initramfs.ReadArchive(b)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, r := range recs {
		names = append(names, r.Name)
	}
	return names, nil
}

// The whole chain in the verdict: a production boot through Secure Boot
// firmware runs `mcinit attest` (the request is in the signed command
// line); `mcinit verify -uki` with the fleet's UKI says ok, anchored in the
// firmware, with Secure Boot on; on x86_64 (OVMF) and aarch64 (AAVMF).
// Golden platform PCRs from this boot's firmware log (mcinit predict
// -platform-log) pass; one changed PCR 0 value fails the check platform.
func TestUEFIFullChainVerdict(t *testing.T) {
	uefiArches(t, func(t *testing.T, arch string) {
		e := env(t, arch)
		requireTools(t, "swtpm")
		nonce := randomNonce(t)
		cmdline := e.UKICmdline(fixture.AttestActions(nonce))
		r := uefiBoot(t, e, "uefi-fullchain", e.Initrd, cmdline, fixture.Snakeoil, fixture.OtherSerial)
		wantSecureBootBoot(t, r, cmdline, "production")
		wantReport(t, r, map[string]string{"action.0.exec.rc": "0", "action.1.exec.rc": "0"})
		q := filepath.Join(t.TempDir(), "q")
		if err := fixture.Evidence(r, 2, q); err != nil {
			t.Fatal(err)
		}
		efi := filepath.Join(e.Dir, "uefi-fullchain.efi")
		out, err := e.Run(context.Background(), "verify", "-quote-dir", q, "-nonce", nonce, "-ak", filepath.Join(q, "enrolled-ak.pem"),
			"-policy", filepath.Join(e.Dir, "policy.toml"), "-keys", e.KeysDir, "-uki", efi, "-require-profile", "production")
		if err != nil {
			t.Fatalf("mcinit verify: %v\n%s", err, out)
		}
		var v struct {
			Verdict, Profile, Anchor string
			SecureBoot               *bool `json:"secure_boot"`
		}
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatal(err)
		}
		if v.Verdict != "ok" || v.Profile != "production" || v.Anchor != "firmware" || v.SecureBoot == nil || !*v.SecureBoot {
			t.Errorf("verdict %+v, want ok production anchored in firmware with Secure Boot:\n%s", v, out)
		}

		// Golden values for the platform PCRs (0-3, 5, 6), taken from this
		// boot's firmware log as from a known-good boot: ok with the check
		// platform; one value changed (another firmware build): rejected,
		// naming PCR 0.
		ctx := context.Background()
		golden := filepath.Join(t.TempDir(), "golden.json")
		if _, err := e.Run(ctx, "predict", "-uki", efi, "-platform-log", filepath.Join(q, "fwlog.bin"),
			"-banks", "sha1,sha256,sha384,sha512", "-format", "json", "-o", golden); err != nil {
			t.Fatal(err)
		}
		args := []string{"verify", "-quote-dir", q, "-nonce", nonce, "-ak", filepath.Join(q, "enrolled-ak.pem"),
			"-policy", filepath.Join(e.Dir, "policy.toml"), "-keys", e.KeysDir, "-golden", golden, "-require-profile", "production"}
		out, err = e.Run(ctx, args...)
		pv := &verdict{}
		_ = json.Unmarshal([]byte(out), pv)
		// The check is there (its detail is set) and passed.
		if err != nil || pv.Verdict != "ok" || failed(pv, "platform") || checkDetail(pv, "platform") == "" {
			t.Errorf("-golden with platform PCRs: %v, verdict %q\n%s", err, pv.Verdict, out)
		}
		gb, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		var g attest.UKIGolden
		if err := json.Unmarshal(gb, &g); err != nil {
			t.Fatal(err)
		}
		g.Platform["0"]["sha256"] = strings.Repeat("5a", 32)
		if gb, err = json.Marshal(&g); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, gb, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err = e.Run(ctx, args...)
		pv = &verdict{}
		_ = json.Unmarshal([]byte(out), pv)
		if err == nil || !strings.Contains(err.Error(), "exit status 3") || !slices.Equal(failedChecks(pv), []string{"platform"}) ||
			!strings.HasPrefix(checkDetail(pv, "platform"), "PCR 0 (sha256) is ") {
			t.Errorf("-golden with another PCR 0: %v, failed %v\n%s", err, failedChecks(pv), out)
		}
	})
}

// TestUEFISysextInPCR13: systemd 252's stub measures the system extensions
// it finds next to the UKI (*.raw in <UKI>.extra.d on the ESP) into PCR 13,
// mcinit's PCR, before the kernel runs, and passes them to the kernel in
// /.extra/sysext. Nothing signs them: anyone who can write the ESP can add
// one. The production UKI boots under Secure Boot with one beside it;
// mcinit boots production, unaware. The firmware log carries the stub's
// PCR 13 event, the quoted PCR 13 is not the predicted production value,
// and mcinit verify rejects (exit 3) for exactly one cause, naming it: the
// firmware log extends PCR 13.
func TestUEFISysextInPCR13(t *testing.T) {
	uefiArches(t, func(t *testing.T, arch string) {
		e := env(t, arch)
		ctx := context.Background()
		requireTools(t, "swtpm", "tpm2_eventlog")
		nonce := randomNonce(t)
		cmdline := e.UKICmdline(fixture.AttestActions(nonce))
		efi, err := e.UKI(ctx, "uefi-sysext", e.Initrd, cmdline, fixture.Snakeoil)
		if err != nil {
			t.Fatal(err)
		}
		dst, err := uki.RemovableMediaPath(arch)
		if err != nil {
			t.Fatal(err)
		}
		disk, err := e.UEFIDiskWith("uefi-sysext", efi, map[string][]byte{
			dst + ".extra.d/extra.sysext.raw": bytes.Repeat([]byte("not mcinit's\n"), 4096),
		})
		if err != nil {
			t.Fatal(err)
		}
		m, err := e.UEFIMachine("uefi-sysext", disk, fixture.OtherSerial)
		if err != nil {
			t.Fatal(err)
		}
		r := boot(t, m)
		wantSecureBootBoot(t, r, cmdline, "production")
		wantReport(t, r, map[string]string{"action.0.exec.rc": "0", "action.1.exec.rc": "0"})
		q := filepath.Join(t.TempDir(), "q")
		if err := fixture.Evidence(r, 2, q); err != nil {
			t.Fatal(err)
		}

		// The stub's event, in the firmware log as tpm2_eventlog reads it too.
		fwb, err := os.ReadFile(filepath.Join(q, "fwlog.bin"))
		if err != nil {
			t.Fatal(err)
		}
		fw, err := fwlog.Parse(fwb)
		if err != nil {
			t.Fatal(err)
		}
		st, err := fw.StubEvents(13)
		if err != nil || len(st) != 1 || st[0].Description != attest.StubSysextEvent {
			t.Errorf("firmware log PCR 13: %+v %v, want one %q event", st, err, attest.StubSysextEvent)
		}
		if out, err := exec.Command("tpm2_eventlog", filepath.Join(q, "fwlog.bin")).CombinedOutput(); err != nil || !strings.Contains(string(out), "PCRIndex: 13") {
			t.Errorf("tpm2_eventlog shows no PCR 13 event in the firmware log: %v", err)
		}

		// PCR 13 is not the production value mcinit predicts for this unit.
		identity, _ := r.Value("file.identity")
		vals, err := attest.ParsePCRs([]byte(mustRead(t, filepath.Join(q, "pcrs.txt"))))
		if err != nil {
			t.Fatal(err)
		}
		pred, err := e.Predict(ctx, filepath.Join(e.Dir, "policy.toml"), identity, "production", "sha256")
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range vals {
			if x.Index == 13 && x.Bank == crypto.SHA256 && hex.EncodeToString(x.Value) == pred.Values["sha256"] {
				t.Errorf("sha256:13 is the predicted production value despite the stub's extend")
			}
		}

		out, err := e.Run(ctx, "verify", "-quote-dir", q, "-nonce", nonce, "-ak", filepath.Join(q, "enrolled-ak.pem"),
			"-policy", filepath.Join(e.Dir, "policy.toml"), "-keys", e.KeysDir, "-uki", efi, "-require-profile", "production")
		t.Logf("mcinit verify: %v\n%s", err, out)
		v := &verdict{}
		if jerr := json.Unmarshal([]byte(out), v); jerr != nil {
			t.Fatalf("verdict JSON: %v", jerr)
		}
		const cause = `firmware log extends PCR 13, mcinit's: 1 EV_IPL event(s), the first "System extension initrd" (record `
		if err == nil || !strings.Contains(err.Error(), "exit status 3") || v.OK || v.Verdict != "fail" {
			t.Errorf("verify: %v, verdict %q; want rejected (exit 3)", err, v.Verdict)
		}
		// The verifier stops at the firmware log, so no profile is read
		// either.
		if got := failedChecks(v); !slices.Equal(got, []string{"firmware-log", "profile-required"}) {
			t.Errorf("failed checks %v, want firmware-log (and so profile-required)", got)
		}
		if d := checkDetail(v, "firmware-log"); !strings.HasPrefix(d, cause) || !strings.HasSuffix(d, "system extensions (*.raw in the UKI's .extra.d directory on the ESP) were measured into it before mcinit ran") {
			t.Errorf("firmware-log check: %q, want %q...", d, cause)
		}
	})
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
