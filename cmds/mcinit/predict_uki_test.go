package main

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/attest"
	"github.com/mcinit/mcinit/fwlog"
	"github.com/mcinit/mcinit/measure"
	"github.com/mcinit/mcinit/uki"
)

// TestPredictUKIMatchesSystemdMeasure: `mcinit predict -uki` gives, per
// bank, the PCR 11 value Debian's systemd-measure calculates for the same
// sections (--phase=: sections only), and the Authenticode digest.
func TestPredictUKIMatchesSystemdMeasure(t *testing.T) {
	const stub, measureTool = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub", "/lib/systemd/systemd-measure"
	for _, f := range []string{stub, measureTool} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%s missing (Debian packages systemd-boot-efi, systemd): %v", f, err)
		}
	}
	sb, err := os.ReadFile(stub)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	in := map[string][]byte{
		"linux":   bytes.Repeat([]byte("not a kernel "), 5000),
		"initrd":  bytes.Repeat([]byte{1, 2, 3}, 7000),
		"cmdline": []byte("console=ttyS0 panic=-1"),
		"osrel":   []byte("ID=mcinit\n"),
	}
	pe, err := uki.Build(uki.Inputs{Stub: sb, Linux: in["linux"], Initrd: in["initrd"], Cmdline: in["cmdline"], OSRel: in["osrel"]})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p("fleet.efi"), pe, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := runPredict([]string{"-uki", p("fleet.efi"), "-banks", "sha1,sha256,sha384,sha512", "-format", "json", "-o", p("golden.json")}); err != nil {
		t.Fatal(err)
	}
	gb, _ := os.ReadFile(p("golden.json"))
	g, err := attest.ParseGolden(gb)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"calculate", "--phase="}
	for n, b := range in {
		if err := os.WriteFile(p(n), b, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--"+n+"="+p(n))
	}
	for _, b := range []string{"sha1", "sha256", "sha384", "sha512"} {
		args = append(args, "--bank="+b)
	}
	out, err := exec.Command(measureTool, args...).Output()
	if err != nil {
		t.Fatalf("systemd-measure: %v", err)
	}
	n := 0
	for _, line := range strings.Fields(string(out)) {
		bank, val, ok := strings.Cut(strings.TrimPrefix(line, "11:"), "=")
		if !ok {
			continue
		}
		n++
		if g.PCR11[bank] != val {
			t.Errorf("%s: predict -uki PCR 11 %s, systemd-measure %s", bank, g.PCR11[bank], val)
		}
	}
	if n != 4 {
		t.Fatalf("systemd-measure printed %d banks:\n%s", n, out)
	}
	if strings.Join(g.Sections, " ") != ".linux .osrel .cmdline .initrd" || len(g.Authenticode) != 4 {
		t.Errorf("golden %+v", g)
	}

	// Text, with a policy refused in json; the text names PCR 4 and 11.
	if err := runPredict([]string{"-uki", p("fleet.efi"), "-o", p("pred.txt")}); err != nil {
		t.Fatal(err)
	}
	txt, _ := os.ReadFile(p("pred.txt"))
	if !strings.Contains(string(txt), "sha256:4 EV_EFI_BOOT_SERVICES_APPLICATION authenticode="+g.Authenticode["sha256"]) ||
		!strings.Contains(string(txt), "sha256:11="+g.PCR11["sha256"]) {
		t.Errorf("predict -uki text:\n%s", txt)
	}
}

// TestPredictUKIPlatformLog: -platform-log adds PCRs 0-3, 5 and 6 as a
// known-good boot's firmware log replays them, in json and text.
func TestPredictUKIPlatformLog(t *testing.T) {
	const stub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
	sb, err := os.ReadFile(stub)
	if err != nil {
		t.Fatalf("%s missing (Debian package systemd-boot-efi): %v", stub, err)
	}
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	pe, err := uki.Build(uki.Inputs{Stub: sb, Linux: bytes.Repeat([]byte("k"), 4096), Cmdline: []byte("console=ttyS0")})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p("fleet.efi"), pe, 0o644); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join("..", "..", "fwlog", "testdata", "ovmf-x86_64-uki-sb-on.bin")
	if err := runPredict([]string{"-uki", p("fleet.efi"), "-platform-log", logFile, "-banks", "sha1,sha256", "-format", "json", "-o", p("golden.json")}); err != nil {
		t.Fatal(err)
	}
	gb, _ := os.ReadFile(p("golden.json"))
	g, err := attest.ParseGolden(gb)
	if err != nil {
		t.Fatal(err)
	}
	lb, _ := os.ReadFile(logFile)
	fw, err := fwlog.Parse(lb)
	if err != nil {
		t.Fatal(err)
	}
	want := fw.ReplayPCRs(attest.PlatformPCRs)
	if len(g.Platform) != len(attest.PlatformPCRs) {
		t.Fatalf("platform PCRs %v", g.Platform)
	}
	for _, i := range attest.PlatformPCRs {
		for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
			if got := g.Platform[strconv.Itoa(i)][measure.BankName(h)]; got != hex.EncodeToString(want[i][h]) {
				t.Errorf("PCR %d %s: %s, the log replays %x", i, measure.BankName(h), got, want[i][h])
			}
		}
	}
	if err := runPredict([]string{"-uki", p("fleet.efi"), "-platform-log", logFile, "-o", p("pred.txt")}); err != nil {
		t.Fatal(err)
	}
	txt, _ := os.ReadFile(p("pred.txt"))
	if !strings.Contains(string(txt), "sha256:0="+g.Platform["0"]["sha256"]+"\n") {
		t.Errorf("text lacks PCR 0:\n%s", txt)
	}
	if err := runPredict([]string{"-platform-log", logFile}); err == nil {
		t.Error("-platform-log without -uki accepted")
	}
}
