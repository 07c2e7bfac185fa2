// Command demo is `make demo`: it builds keys, a signed policy, a verity
// root disk and the initramfs with the mcinit CLI, boots the default board
// (qemu-x86_64) under QEMU with a software TPM — as production, as an
// allowed development unit, as a unit whose development request is
// denied, and as production from a signed UKI through OVMF with Secure Boot
// enforcing — and prints what mcinit decided and measured.
package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcinit/mcinit/e2e/fixture"
	"github.com/mcinit/mcinit/e2e/harness"
	"github.com/mcinit/mcinit/measure"
	"github.com/mcinit/mcinit/uki"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func step(format string, a ...any) {
	fmt.Printf("==> "+format+"\n", a...)
}

func run() error {
	ctx := context.Background()
	dir := filepath.Join("out", "demo")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	e, err := fixture.New(ctx, abs, "amd64", step)
	if err != nil {
		return err
	}
	fmt.Printf("    kernel %s\n    disk %s (root hash %s…)\n    initramfs %s\n",
		filepath.Base(e.Kernel), e.Disk, e.RootHash[:16], e.Initrd)

	boots := []struct {
		title, serial, cmdline string
		request, reason        string // for mcinit predict
	}{
		{"a production unit, plain boot", fixture.OtherSerial, "", "none", "default"},
		{"the listed developer unit asks for development", fixture.DevSerial, "mcinit.profile=development", "development", "dev-allowed-device"},
		{"a production unit asks for development", fixture.OtherSerial, "mcinit.profile=development", "development", "dev-denied"},
	}
	type row struct{ title, board, profile, reason, root, initMS, pcr string }
	var rows []row
	for i, b := range boots {
		step("boot %d: %s (serial %s%s)", i+1, b.title, b.serial, prefixed(" ", b.cmdline))
		m := e.Machine(fmt.Sprintf("demo-%d", i+1), e.Initrd, e.Disk, b.serial, b.cmdline)
		m.LogDir = dir
		r, err := harness.Boot(ctx, m)
		if err != nil {
			return err
		}
		for _, l := range r.Mcinit {
			fmt.Printf("    %s\n", l.Text)
		}
		if !r.ReportComplete {
			return fmt.Errorf("boot %d did not reach the real init (%s); serial log: %s", i+1, r.Outcome, r.LogPath)
		}
		profile, _ := r.Value("profile")
		board, _ := r.Value("file.board")
		root := fmt.Sprintf("%s %s (%s)", val(r, "root.fstype"), val(r, "root.source"), val(r, "root.mode"))
		fmt.Printf("    real init: profile=%s root=%s modules_disabled=%s\n", profile, root, val(r, "modules_disabled"))
		ev, pcr := events(r)
		for _, l := range ev {
			fmt.Printf("    measured: %s\n", l)
		}
		// The verifier's side: the same value computed offline from the
		// signed policy, the board identity and the profile.
		ident, _ := r.Value("file.identity")
		pr, err := e.Predict(ctx, filepath.Join(e.Dir, "policy.toml"), strings.TrimSpace(ident), profile, "sha256",
			"-request", b.request, "-reason", b.reason)
		if err == nil && len(pr.Values["sha256"]) == 64 {
			want := pr.Values["sha256"]
			verdict := "matches the log"
			if !strings.HasPrefix(want, strings.TrimSuffix(pcr, "…")) {
				verdict = "DOES NOT match the log"
			}
			fmt.Printf("    mcinit predict: PCR 13 sha256 %s… (%s)\n", want[:24], verdict)
		} else {
			fmt.Printf("    mcinit predict: %v %v\n", err, pr)
		}
		rows = append(rows, row{b.title, board, profile, reason(r), root, initTime(r), pcr})
	}
	sb, err := secureBootBoot(ctx, e, dir)
	if err != nil {
		return err
	}
	sbRoot := fmt.Sprintf("%s %s (%s)", val(sb.r, "root.fstype"), val(sb.r, "root.source"), val(sb.r, "root.mode"))
	rows = append(rows, row{sb.title, val(sb.r, "file.board"), val(sb.r, "profile"), reason(sb.r), sbRoot, initTime(sb.r), sb.pcr})
	step("summary")
	fmt.Printf("    %-48s %-12s %-12s %-18s %-9s %s\n", "boot", "board", "profile", "reason", "/init→init", "PCR 13 (sha256, replayed from the log)")
	for _, r := range rows {
		fmt.Printf("    %-48s %-12s %-12s %-18s %-9s %s\n", r.title, r.board, r.profile, r.reason, r.initMS, r.pcr)
	}
	fmt.Printf("    serial logs and all inputs: %s\n", dir)
	return nil
}

type sbResult struct {
	title, pcr string
	r          *harness.Result
}

// secureBootBoot builds a signed UKI (Debian's stub, the demo's kernel,
// initramfs and command line, Debian's OVMF test key), puts it on the ESP
// of a copy of the verity disk and boots it through OVMF with Secure Boot
// enforcing, as the production unit.
func secureBootBoot(ctx context.Context, e *fixture.Env, dir string) (*sbResult, error) {
	title := "a production unit, UKI under Secure Boot"
	step("boot 4: %s (serial %s, OVMF, signed UKI on the ESP)", title, fixture.OtherSerial)
	nonceB := make([]byte, 16)
	if _, err := rand.Read(nonceB); err != nil {
		return nil, err
	}
	nonce := hex.EncodeToString(nonceB)
	// The attestation request rides in the signed command line: under
	// Secure Boot nothing else reaches the kernel.
	cmdline := e.UKICmdline(fixture.AttestActions(nonce))
	efi, err := e.UKI(ctx, "demo-uki", e.Initrd, cmdline, fixture.Snakeoil)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(efi)
	if err != nil {
		return nil, err
	}
	digest, err := uki.AuthenticodeDigest(b, crypto.SHA256)
	if err != nil {
		return nil, err
	}
	secs, err := uki.MeasuredSections(b)
	if err != nil {
		return nil, err
	}
	fmt.Printf("    UKI %s: %d bytes, signed; PCR 4 event (Authenticode sha256) %x…\n", efi, len(b), digest[:12])
	fmt.Printf("    PCR 11 as the stub leaves it (sha256) %x…\n", uki.PCR11(secs, crypto.SHA256)[:12])
	disk, err := e.UEFIDisk("demo-uefi", efi)
	if err != nil {
		return nil, err
	}
	m, err := e.UEFIMachine("demo-4-uefi", disk, fixture.OtherSerial)
	if err != nil {
		return nil, err
	}
	m.LogDir = dir
	r, err := harness.Boot(ctx, m)
	if err != nil {
		return nil, err
	}
	for _, l := range r.Mcinit {
		fmt.Printf("    %s\n", l.Text)
	}
	if !r.ReportComplete {
		return nil, fmt.Errorf("the Secure Boot boot did not reach the real init (%s); serial log: %s", r.Outcome, r.LogPath)
	}
	// efivarfs is a module that a production boot cannot load, so the
	// kernel's own console line is the guest's word on Secure Boot.
	sbState := map[string]string{"1": "on", "0": "off"}[val(r, "secureboot")]
	switch {
	case sbState != "":
	case r.Has("secureboot: Secure boot enabled"):
		sbState = "on (kernel log)"
	case r.Has("secureboot: Secure boot disabled"):
		sbState = "off (kernel log)"
	default:
		sbState = "unknown"
	}
	cmdOK := "the UKI's own"
	if val(r, "cmdline") != cmdline {
		cmdOK = "NOT the UKI's"
	}
	fmt.Printf("    firmware: Secure Boot %s; kernel command line is %s; boot took %v (firmware start to power-off)\n",
		sbState, cmdOK, r.Elapsed.Round(time.Second))
	_, pcr := events(r)
	fmt.Printf("    real init: profile=%s root=%s %s (%s)\n", val(r, "profile"), val(r, "root.fstype"), val(r, "root.source"), val(r, "root.mode"))
	fullChainVerdict(ctx, e, r, efi, nonce)
	return &sbResult{title: title, pcr: pcr, r: r}, nil
}

// fullChainVerdict hands the guest's evidence (quote, mcinit's and the
// firmware's event logs) to `mcinit verify` with the fleet's UKI and prints
// its verdict. The AK comes from the same boot here; a real verifier
// enrolls it first.
func fullChainVerdict(ctx context.Context, e *fixture.Env, r *harness.Result, efi, nonce string) {
	q := filepath.Join(e.Dir, "demo-uefi-evidence")
	if err := fixture.Evidence(r, 2, q); err != nil {
		fmt.Printf("    mcinit verify: no evidence from the guest: %v\n", err)
		return
	}
	out, err := e.Run(ctx, "verify", "-quote-dir", q, "-nonce", nonce, "-ak", filepath.Join(q, "enrolled-ak.pem"),
		"-policy", filepath.Join(e.Dir, "policy.toml"), "-keys", e.KeysDir, "-uki", efi, "-require-profile", "production")
	var v struct {
		Verdict, Profile, Anchor, UKI string
		SecureBoot                    *bool `json:"secure_boot"`
		Checks                        []struct {
			Name, Detail string
			OK           bool
		}
	}
	if jerr := json.Unmarshal([]byte(out), &v); jerr != nil {
		fmt.Printf("    mcinit verify: %v %v\n", err, jerr)
		return
	}
	sb := "?"
	if v.SecureBoot != nil {
		sb = fmt.Sprint(*v.SecureBoot)
	}
	fmt.Printf("    mcinit verify -uki (full chain): verdict %s, profile %s, anchor %s, secure boot %s, uki %s\n", v.Verdict, v.Profile, v.Anchor, sb, v.UKI)
	for _, c := range v.Checks {
		if !c.OK {
			fmt.Printf("      failed check %s: %s\n", c.Name, c.Detail)
		}
	}
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

func val(r *harness.Result, k string) string {
	v, ok := r.Value(k)
	if !ok {
		return "?"
	}
	return v
}

func reason(r *harness.Result) string {
	s := val(r, "file.summary")
	for _, l := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(l, "reason: "); ok {
			return v
		}
	}
	return "?"
}

// initTime is the kernel-time span from "Run /init" to the real init's
// first line.
func initTime(r *harness.Result) string {
	start, ok := r.FirstStamped("Run /init as init process")
	end, ok2 := r.KmsgInitTS()
	if !ok || !ok2 {
		return "?"
	}
	return fmt.Sprintf("%d ms", (end-start.TS)/time.Millisecond)
}

// events decodes the event log /init left in /run/mcinit and replays it.
func events(r *harness.Result) ([]string, string) {
	raw, ok := r.Value("file.eventlog.bin")
	if !ok {
		return nil, "?"
	}
	l, err := measure.ParseLog([]byte(raw))
	if err != nil {
		return []string{"event log: " + err.Error()}, "?"
	}
	var out []string
	for _, rec := range l.Records {
		if ev, err := rec.Tagged(); err == nil {
			out = append(out, ev.String())
		}
	}
	pcr := "?"
	for h, v := range l.Replay(13) {
		if measure.BankName(h) == "sha256" {
			pcr = fmt.Sprintf("%x…", v[:12])
		}
	}
	return out, pcr
}
