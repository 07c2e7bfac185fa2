package main

import (
	"bytes"
	"compress/gzip"
	"crypto"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/mcinit/mcinit/boards"
	"github.com/mcinit/mcinit/internal/boundedfile"
	"github.com/mcinit/mcinit/uki"
)

func init() {
	register("uki", "build a Unified Kernel Image on systemd's EFI stub, optionally signed for Secure Boot", runUKI)
}

func runUKI(args []string) error {
	fs := flag.NewFlagSet("uki", flag.ContinueOnError)
	kernel := fs.String("kernel", "", "kernel image (vmlinuz; a gzip'd arm64 vmlinuz is decompressed) (required)")
	initrd := fs.String("initramfs", "", "initramfs (required)")
	cmdline := fs.String("cmdline", "", "kernel command line, stored exactly as given (required)")
	osrel := fs.String("osrel", "", "os-release file for .osrel")
	dtb := fs.String("dtb", "", "device tree blob for .dtb")
	stub := fs.String("stub", "", "systemd EFI stub (default: Debian's systemd-boot-efi for -arch)")
	arch := fs.String("arch", "", "amd64 or arm64 (default: the stub's, else this machine's)")
	signKey := fs.String("sign-key", "", "PEM RSA private key (unencrypted) to sign with, for Secure Boot")
	signCert := fs.String("sign-cert", "", "PEM certificate matching -sign-key")
	board := fs.String("board", "", "append this board's kernel_params (those not already on -cmdline) to the command line")
	boardsDir := fs.String("boards-dir", "", "board definitions `DIR` for -board (default: the shipped boards)")
	out := fs.String("o", "", "output UKI (required)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: mcinit uki -kernel K -initramfs I -cmdline TEXT [-osrel FILE] [-dtb FILE] [-stub FILE] [-arch amd64|arm64] [-board NAME [-boards-dir DIR]] [-sign-key KEY.pem -sign-cert CERT.pem] -o OUT.efi")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() != 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *kernel == "" || *initrd == "" || *cmdline == "" || *out == "" {
		return usagef("need -kernel, -initramfs, -cmdline and -o")
	}
	if (*signKey == "") != (*signCert == "") {
		return usagef("-sign-key and -sign-cert go together")
	}

	var in uki.Inputs
	var err error
	goarch := *arch
	if goarch != "" {
		if goarch, err = imageArch(goarch); err != nil {
			return usagef("-arch: %v", err)
		}
	}
	stubPath := *stub
	if stubPath == "" {
		if goarch == "" {
			goarch = runtime.GOARCH
		}
		if stubPath, err = findStub(goarch); err != nil {
			return err
		}
	}
	if in.Stub, err = os.ReadFile(stubPath); err != nil {
		return err
	}
	sf, err := uki.Parse(in.Stub)
	if err != nil {
		return fmt.Errorf("stub %s: %w", stubPath, err)
	}
	if goarch == "" {
		switch sf.Machine {
		case 0x8664:
			goarch = "amd64"
		case 0xaa64:
			goarch = "arm64"
		default:
			return fmt.Errorf("stub %s: PE machine %#x is neither x86_64 nor aarch64", stubPath, sf.Machine)
		}
	}
	if _, machine, err := uki.StubName(goarch); err != nil {
		return usagef("-arch: %v", err)
	} else if sf.Machine != machine {
		return fmt.Errorf("stub %s is for PE machine %#x, not %s", stubPath, sf.Machine, goarch)
	}

	if in.Linux, err = readKernel(*kernel); err != nil {
		return err
	}
	if in.Initrd, err = os.ReadFile(*initrd); err != nil {
		return err
	}
	line, err := withBoardParams(*cmdline, *board, *boardsDir)
	if err != nil {
		return err
	}
	in.Cmdline = []byte(line)
	if *osrel != "" {
		if in.OSRel, err = os.ReadFile(*osrel); err != nil {
			return err
		}
	}
	if *dtb != "" {
		if in.DTB, err = os.ReadFile(*dtb); err != nil {
			return err
		}
	}
	img, err := uki.Build(in)
	if err != nil {
		return err
	}
	signer := ""
	if *signKey != "" {
		kb, err := os.ReadFile(*signKey)
		if err != nil {
			return err
		}
		cb, err := os.ReadFile(*signCert)
		if err != nil {
			return err
		}
		key, cert, err := uki.LoadSigner(kb, cb)
		if err != nil {
			return err
		}
		if img, err = uki.Sign(img, key, cert); err != nil {
			return err
		}
		signer = cert.Subject.String()
	}
	if err := writeFileAtomic(*out, img); err != nil {
		return err
	}
	digest, err := uki.AuthenticodeDigest(img, crypto.SHA256)
	if err != nil {
		return err
	}
	secs, err := uki.MeasuredSections(img)
	if err != nil {
		return err
	}
	fmt.Printf("uki %s: %s, %d bytes, authenticode sha256:%x, pcr11 sha256:%x", *out, goarch, len(img), digest, uki.PCR11(secs, crypto.SHA256))
	if signer != "" {
		fmt.Printf(", signed by %s", signer)
	} else {
		fmt.Print(", unsigned")
	}
	fmt.Println()
	return nil
}

// maxKernelImage bounds a decompressed kernel image.
const maxKernelImage = 1 << 30

// readKernel reads a kernel image and returns it as an EFI application:
// Debian's arm64 vmlinuz is a gzip of Image, which is decompressed.
func readKernel(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("kernel %s: %w", path, err)
		}
		var buf bytes.Buffer
		if _, err := boundedfile.Copy(&buf, zr, "decompressed", maxKernelImage); err != nil {
			return nil, fmt.Errorf("kernel %s: %w", path, err)
		}
		b = buf.Bytes()
	}
	if len(b) < 2 || b[0] != 'M' || b[1] != 'Z' {
		return nil, fmt.Errorf("kernel %s is not an EFI application (no MZ header; the kernel needs CONFIG_EFI_STUB)", path)
	}
	return b, nil
}

// findStub locates systemd's stub for goarch: the host's systemd-boot-efi
// package when it is for that architecture, else the mcinit cache that
// scripts/debpkg.sh fills (running it when found in the source tree).
func findStub(goarch string) (string, error) {
	name, _, err := uki.StubName(goarch)
	if err != nil {
		return "", usagef("-arch: %v", err)
	}
	host := filepath.Join(uki.StubDir, name)
	if _, err := os.Stat(host); err == nil {
		return host, nil
	}
	cache := os.Getenv("MCINIT_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(home, ".cache/mcinit")
	}
	cached := filepath.Join(cache, "pkgs", goarch, "systemd-boot-efi", uki.StubDir, name)
	if _, err := os.Stat(cached); err == nil {
		return cached, nil
	}
	if script := findDebpkg(); script != "" {
		o, err := exec.Command(script, goarch, "systemd-boot-efi").Output()
		if err != nil {
			return "", fmt.Errorf("%s %s systemd-boot-efi: %w", script, goarch, err)
		}
		p := filepath.Join(strings.TrimSpace(string(o)), uki.StubDir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no " + name + ": install systemd-boot-efi, run scripts/debpkg.sh " + goarch + " systemd-boot-efi, or pass -stub")
}

// findDebpkg returns scripts/debpkg.sh of the source tree the working
// directory is in, or "".
func findDebpkg() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		p := filepath.Join(dir, "scripts/debpkg.sh")
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// withBoardParams appends the board's kernel_params that are not already
// words of cmdline: the UKI's command line is the only place a board's
// parameters can come from under Secure Boot, since the stub ignores any
// other (docs/boards.md).
func withBoardParams(cmdline, name, dir string) (string, error) {
	if name == "" {
		return cmdline, nil
	}
	var set *boards.Set
	var err error
	if dir != "" {
		set, err = boards.Load(os.DirFS(dir))
	} else {
		set, err = boards.Shipped()
	}
	if err != nil {
		return "", err
	}
	b, ok := set.Get(name)
	if !ok {
		return "", usagef("-board: no board %q", name)
	}
	for _, p := range b.MissingParams(cmdline) {
		cmdline += " " + p
	}
	return cmdline, nil
}
