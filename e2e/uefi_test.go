package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/e2e/fixture"
	"github.com/mcinit/mcinit/e2e/harness"
	"github.com/mcinit/mcinit/initramfs"
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
// lists, production elsewhere.
func TestUEFIDevelopmentUKI(t *testing.T) {
	e := env(t, "amd64")
	cmdline := e.UKICmdline("mcinit.profile=development")
	for _, c := range []struct {
		name, serial, profile string
	}{
		{"allowed", fixture.DevSerial, "development"},
		{"denied", fixture.OtherSerial, "production"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := uefiBoot(t, e, "uefi-dev-"+c.name, e.Initrd, cmdline, fixture.Snakeoil, c.serial)
			wantSecureBootBoot(t, r, cmdline, c.profile)
			if c.profile == "production" && !r.Has("reason dev-denied") {
				t.Error("no dev-denied reason on the console")
			}
		})
	}
}

// The attack of issue 10: a boot entry (here QEMU's -kernel/-append, which
// OVMF turns into a LoadImage of the UKI with the -append text as its load
// options) passes rdinit= to skip mcinit. Under Secure Boot the stub
// ignores load options when the UKI has a .cmdline: the kernel gets the
// UKI's command line and mcinit runs. The control boot, without Secure
// Boot, shows that the same path does deliver a command line.
func TestUEFIStubIgnoresCmdlineOverride(t *testing.T) {
	e := env(t, "amd64")
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
		m, err := e.UEFIMachine("uefi-override-plain", e.Disk, fixture.OtherSerial)
		if err != nil {
			t.Fatal(err)
		}
		fw, err := harness.PlainFirmware("amd64")
		if err != nil {
			t.Fatal(err)
		}
		m.Firmware = &fw
		override := e.UKICmdline("mcinit_test.override=1")
		m.Kernel, m.Append = efi, override
		r := boot(t, m)
		wantReport(t, r, map[string]string{"efi": "yes", "lockdown": "[none] integrity confidentiality", "cmdline": override, "profile": "production"})
		if !r.Has("secureboot: Secure boot disabled") {
			t.Errorf("the control boot did not run without Secure Boot (log %s)", r.LogPath)
		}
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
	})
}
