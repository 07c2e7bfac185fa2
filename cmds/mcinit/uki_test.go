package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/uki"
)

func TestUKIVerb(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	kernel := append([]byte("MZ"), bytes.Repeat([]byte("not a real kernel"), 1000)...)
	os.WriteFile(p("vmlinuz"), kernel, 0o644)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(kernel)
	zw.Close()
	os.WriteFile(p("vmlinuz.gz"), gz.Bytes(), 0o644)
	os.WriteFile(p("initrd"), []byte("070701 initramfs"), 0o644)
	os.WriteFile(p("os-release"), []byte("ID=mcinit\n"), 0o644)
	cmdline := "console=ttyS0  quiet mcinit.profile=development "

	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			k := p("vmlinuz")
			if arch == "arm64" {
				k = p("vmlinuz.gz") // Debian's arm64 vmlinuz is gzip
			}
			args := []string{"-arch", arch, "-kernel", k, "-initramfs", p("initrd"), "-osrel", p("os-release"), "-cmdline", cmdline}
			if err := runUKI(append(args, "-o", p(arch+"-1.efi"))); err != nil {
				t.Fatal(err)
			}
			if err := runUKI(append(args, "-o", p(arch+"-2.efi"))); err != nil {
				t.Fatal(err)
			}
			a, _ := os.ReadFile(p(arch + "-1.efi"))
			b, _ := os.ReadFile(p(arch + "-2.efi"))
			if !bytes.Equal(a, b) {
				t.Fatal("two builds differ")
			}
			f, err := uki.Parse(a)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]uint16{"amd64": 0x8664, "arm64": 0xaa64}[arch]
			if f.Machine != want {
				t.Errorf("machine %#x, want %#x", f.Machine, want)
			}
			for name, w := range map[string][]byte{".cmdline": []byte(cmdline), ".linux": kernel, ".osrel": []byte("ID=mcinit\n")} {
				s, ok := f.Section(name)
				if !ok || !bytes.Equal(f.Data(s), w) {
					t.Errorf("%s not verbatim", name)
				}
			}
		})
	}

	// Signed: sbverify accepts it with the certificate.
	key, cert := p("k.pem"), p("c.pem")
	if o, err := exec.Command("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=uki verb").CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v\n%s", err, o)
	}
	if err := runUKI([]string{"-arch", "amd64", "-kernel", p("vmlinuz"), "-initramfs", p("initrd"), "-cmdline", "x", "-sign-key", key, "-sign-cert", cert, "-o", p("signed.efi")}); err != nil {
		t.Fatal(err)
	}
	if o, err := exec.Command("sbverify", "--cert", cert, p("signed.efi")).CombinedOutput(); err != nil {
		t.Fatalf("sbverify: %v\n%s", err, o)
	}

	// Usage errors exit 2; a non-EFI kernel is an error naming the cause.
	var ue usageError
	if err := runUKI([]string{"-kernel", p("vmlinuz"), "-o", p("x.efi")}); !errors.As(err, &ue) {
		t.Errorf("missing flags: %v", err)
	}
	os.WriteFile(p("notefi"), []byte("\x7fELF"), 0o644)
	err := runUKI([]string{"-arch", "amd64", "-kernel", p("notefi"), "-initramfs", p("initrd"), "-cmdline", "x", "-o", p("x.efi")})
	if err == nil || !strings.Contains(err.Error(), "not an EFI application") {
		t.Errorf("ELF kernel: %v", err)
	}
	err = runUKI([]string{"-arch", "arm64", "-stub", uki.StubDir + "/linuxx64.efi.stub", "-kernel", p("vmlinuz"), "-initramfs", p("initrd"), "-cmdline", "x", "-o", p("x.efi")})
	if err == nil || !strings.Contains(err.Error(), "not arm64") {
		t.Errorf("x86 stub for arm64: %v", err)
	}
}

func TestImageVerbUKI(t *testing.T) {
	dir := t.TempDir()
	init := filepath.Join(dir, "testinit")
	os.WriteFile(init, []byte("stand-in"), 0o755)
	efi := filepath.Join(dir, "uki.efi")
	os.WriteFile(efi, []byte("MZ pretend UKI"), 0o644)
	disk := filepath.Join(dir, "disk.img")
	out, err := imageStdout(t, "-arch", "arm64", "-out", disk, "-verity", "-testinit", init, "-uki", efi, "-json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"TypeUUID": "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"`) {
		t.Fatalf("no ESP in %s", out)
	}
	// The ESP is the last partition; read BOOTAA64.EFI back with mtools.
	o, err := exec.Command("sgdisk", "-i", "3", disk).Output()
	if err != nil {
		t.Fatal(err)
	}
	var first int64
	for _, l := range strings.Split(string(o), "\n") {
		if v, ok := strings.CutPrefix(l, "First sector: "); ok {
			first, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	got := filepath.Join(dir, "got.efi")
	if o, err := exec.Command("mcopy", "-i", disk+"@@"+strconv.FormatInt(first*512, 10), "::/EFI/BOOT/BOOTAA64.EFI", got).CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v\n%s", err, o)
	}
	if b, _ := os.ReadFile(got); string(b) != "MZ pretend UKI" {
		t.Fatalf("BOOTAA64.EFI = %q", b)
	}
}

// TestUKIBoardParams: -board appends the board's kernel_params that the
// command line lacks, once, after the given text.
func TestUKIBoardParams(t *testing.T) {
	const board = "lenovo-thinkpad-x1-11th-gen" // kernel_params = ["i915.force_probe=a7a1"]
	for _, tc := range []struct{ in, want string }{
		{"console=ttyS0", "console=ttyS0 i915.force_probe=a7a1"},
		{"i915.force_probe=a7a1 quiet", "i915.force_probe=a7a1 quiet"},
	} {
		got, err := withBoardParams(tc.in, board, "")
		if err != nil || got != tc.want {
			t.Errorf("withBoardParams(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if got, err := withBoardParams("x", "", ""); err != nil || got != "x" {
		t.Errorf("no -board changed the command line: %q %v", got, err)
	}
	if _, err := withBoardParams("x", "no-such-board", ""); exitCode("uki", err) != exitUsage {
		t.Errorf("unknown board: %v, want a usage error", err)
	}
}
