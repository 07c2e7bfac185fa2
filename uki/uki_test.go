package uki

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const (
	hostStubX64 = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
	snakeoilKey = "/usr/share/ovmf/PkKek-1-snakeoil.key"
	snakeoilPEM = "/usr/share/ovmf/PkKek-1-snakeoil.pem"
)

// need returns the path of a real tool or file the test depends on; it
// fails (never skips) when it is missing: the packages are in the
// Makefile's DEB_PACKAGES.
func need(t *testing.T, what, pkg string) string {
	t.Helper()
	if strings.HasPrefix(what, "/") {
		if _, err := os.Stat(what); err != nil {
			t.Fatalf("%s missing (install Debian's %s): %v", what, pkg, err)
		}
		return what
	}
	p, err := exec.LookPath(what)
	if err != nil {
		t.Fatalf("%s not found (install Debian's %s): %v", what, pkg, err)
	}
	return p
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testInputs uses made-up payloads: the stub is real, the payloads only
// need to be bytes for layout, hashing and signing.
func testInputs(t *testing.T) Inputs {
	return Inputs{
		Stub:    readFile(t, need(t, hostStubX64, "systemd-boot-efi")),
		Linux:   bytes.Repeat([]byte("kernel!"), 100001),
		Initrd:  bytes.Repeat([]byte{0x07, 0x07, 0x01}, 77777),
		Cmdline: []byte("console=ttyS0 mcinit.profile=production"),
		OSRel:   []byte("ID=mcinit\nVERSION_ID=1\n"),
	}
}

func TestStubChecksumAlgorithm(t *testing.T) {
	f, err := Parse(readFile(t, need(t, hostStubX64, "systemd-boot-efi")))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.Checksum(), f.StoredChecksum(); got != want {
		t.Fatalf("checksum %#x, the linker wrote %#x", got, want)
	}
}

func TestBuildLayout(t *testing.T) {
	in := testInputs(t)
	in.DTB = []byte{0xd0, 0x0d, 0xfe, 0xed, 1, 2, 3}
	out, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, again) {
		t.Fatal("two builds from the same inputs differ")
	}
	f, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if f.Checksum() != f.StoredChecksum() {
		t.Fatalf("stored checksum %#x, want %#x", f.StoredChecksum(), f.Checksum())
	}
	want := map[string][]byte{".osrel": in.OSRel, ".cmdline": in.Cmdline, ".dtb": in.DTB, ".linux": in.Linux, ".initrd": in.Initrd}
	var order []string
	prevVA := uint32(0)
	for _, s := range f.Sections {
		w, ok := want[s.Name]
		if !ok {
			continue
		}
		order = append(order, s.Name)
		if !bytes.Equal(f.Data(s), w) {
			t.Errorf("%s does not hold its input verbatim", s.Name)
		}
		if s.VirtualAddress%minSectionAlign != 0 || s.VirtualAddress <= prevVA {
			t.Errorf("%s at VA %#x: not page aligned or not ascending", s.Name, s.VirtualAddress)
		}
		if uint64(s.VirtualAddress)+uint64(s.VirtualSize) > uint64(f.SizeOfImage) {
			t.Errorf("%s ends past SizeOfImage", s.Name)
		}
		prevVA = s.VirtualAddress
	}
	if got := strings.Join(order, " "); got != ".osrel .cmdline .dtb .linux .initrd" {
		t.Errorf("section order %q", got)
	}
	if len(out)%int(f.FileAlignment) != 0 {
		t.Errorf("file size %d not file aligned", len(out))
	}
	// binutils agrees it is a valid PE image with those sections.
	if p, err := exec.LookPath("objdump"); err == nil {
		path := filepath.Join(t.TempDir(), "uki.efi")
		os.WriteFile(path, out, 0o644)
		o, err := exec.Command(p, "-h", path).CombinedOutput()
		if err != nil || !strings.Contains(string(o), "pei-x86-64") || !strings.Contains(string(o), ".initrd") {
			t.Errorf("objdump -h: %v\n%s", err, o)
		}
	}
}

func TestBuildRefuses(t *testing.T) {
	in := testInputs(t)
	in.Cmdline = nil
	if _, err := Build(in); err == nil || !strings.Contains(err.Error(), "empty command line") {
		t.Errorf("empty cmdline: %v", err)
	}
	in = testInputs(t)
	uki, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	in.Stub = uki
	if _, err := Build(in); err == nil || !strings.Contains(err.Error(), "already has") {
		t.Errorf("UKI as stub: %v", err)
	}
}

// systemd-measure (Debian's systemd 252) is the reference for PCR 11.
func TestPCR11MatchesSystemdMeasure(t *testing.T) {
	measure := need(t, "/lib/systemd/systemd-measure", "systemd")
	in := testInputs(t)
	in.DTB = []byte("not really a dtb")
	out, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string][]byte{"linux": in.Linux, "initrd": in.Initrd, "cmdline": in.Cmdline, "osrel": in.OSRel, "dtb": in.DTB}
	args := []string{"calculate", "--phase="}
	for n, b := range files {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--"+n+"="+p)
	}
	banks := map[string]crypto.Hash{"sha1": crypto.SHA1, "sha256": crypto.SHA256, "sha384": crypto.SHA384, "sha512": crypto.SHA512}
	for b := range banks {
		args = append(args, "--bank="+b)
	}
	o, err := exec.Command(measure, args...).Output()
	if err != nil {
		t.Fatalf("systemd-measure: %v", err)
	}
	secs, err := MeasuredSections(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range secs {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, " "); got != ".linux .osrel .cmdline .initrd .dtb" {
		t.Errorf("measured order %q", got)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(o)), "\n") {
		bank, val, ok := strings.Cut(strings.TrimPrefix(line, "11:"), "=")
		if !ok {
			continue
		}
		h, ok := banks[bank]
		if !ok {
			t.Fatalf("unexpected line %q", line)
		}
		seen++
		if got := hex.EncodeToString(PCR11(secs, h)); got != val {
			t.Errorf("%s: PCR 11 %s, systemd-measure %s", bank, got, val)
		}
	}
	if seen != len(banks) {
		t.Fatalf("systemd-measure printed %d banks:\n%s", seen, o)
	}
}

// The stub's section lookup is a prefix match where the last header wins,
// with the virtual size as the size (zero-filled past the raw data).
func TestMeasuredSectionsLikeTheStub(t *testing.T) {
	out, err := Build(testInputs(t))
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := f.Section(".cmdline")
	secs, err := f.MeasuredSections()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range secs {
		if m.Name == ".cmdline" && (m.Size != s.VirtualSize || !bytes.Equal(m.Data, f.Data(s))) {
			t.Fatalf("cmdline section %+v", m)
		}
	}
	// Zero fill: a virtual size past the raw data hashes as data + zeros.
	m := MeasuredSection{Name: ".x", Data: []byte("ab"), Size: 5000}
	_, c := m.Digests(crypto.SHA256)
	want := sha256Sum(append([]byte("ab"), make([]byte, 4998)...))
	if !bytes.Equal(c, want) {
		t.Fatal("zero fill digest wrong")
	}
}
