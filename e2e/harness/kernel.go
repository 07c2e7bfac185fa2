// Package harness boots Debian's kernels under QEMU (TCG) with a software
// TPM (swtpm) for mcinit's end-to-end tests, and parses the serial console
// into a result: how the boot ended, testinit's report, mcinit's lines and
// kernel timestamps.
package harness

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/mcinit/mcinit/internal/boundedfile"
)

// modulePath is the Go module whose root holds scripts/debpkg.sh.
const modulePath = "github.com/mcinit/mcinit"

// GoArch maps an architecture name (Go, Debian or QEMU spelling) to Go's.
func GoArch(arch string) (string, error) {
	switch arch {
	case "amd64", "x86_64":
		return "amd64", nil
	case "arm64", "aarch64":
		return "arm64", nil
	}
	return "", fmt.Errorf("unsupported architecture %q (want amd64 or arm64)", arch)
}

// RepoRoot finds the mcinit module root by walking up from the working
// directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && isModule(b) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("mcinit module root (go.mod) not found above the working directory")
		}
		dir = parent
	}
}

func isModule(gomod []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "module" {
			return f[1] == modulePath
		}
	}
	return false
}

// Kernel fetches (once, cached) Debian's cloud kernel for arch with
// scripts/debpkg.sh and returns a bootable kernel image for QEMU's -kernel,
// the module tree (lib/modules/<kver>) and the kernel version. A gzip'd
// arm64 Image is decompressed next to it, since QEMU's aarch64 -kernel
// wants it raw.
func Kernel(ctx context.Context, arch string) (vmlinuz, modulesDir, kver string, err error) {
	ga, err := GoArch(arch)
	if err != nil {
		return "", "", "", err
	}
	root, err := RepoRoot()
	if err != nil {
		return "", "", "", err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts/debpkg.sh"), ga, "linux-image-cloud-"+ga)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", "", "", fmt.Errorf("debpkg.sh %s linux-image-cloud-%s: %v: %s", ga, ga, err, strings.TrimSpace(stderr.String()))
	}
	return KernelFromTree(strings.TrimSpace(string(out)))
}

// KernelFromTree locates the kernel image and module tree in an unpacked
// linux-image package.
func KernelFromTree(pkgDir string) (vmlinuz, modulesDir, kver string, err error) {
	ents, err := os.ReadDir(filepath.Join(pkgDir, "lib/modules"))
	if err != nil {
		return "", "", "", fmt.Errorf("kernel package %s: %w", pkgDir, err)
	}
	var vers []string
	for _, e := range ents {
		if e.IsDir() {
			vers = append(vers, e.Name())
		}
	}
	if len(vers) != 1 {
		return "", "", "", fmt.Errorf("kernel package %s: want one lib/modules/<version>, found %d", pkgDir, len(vers))
	}
	kver = vers[0]
	modulesDir = filepath.Join(pkgDir, "lib/modules", kver)
	vmlinuz = filepath.Join(pkgDir, "boot", "vmlinuz-"+kver)
	raw, err := rawImage(vmlinuz)
	if err != nil {
		return "", "", "", err
	}
	return raw, modulesDir, kver, nil
}

// rawImage returns path itself unless it is gzip-compressed, in which case
// it decompresses it once to path + ".raw" and returns that.
func rawImage(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("kernel image: %w", err)
	}
	defer f.Close()
	magic := make([]byte, 2)
	if _, err := io.ReadFull(f, magic); err != nil {
		return "", fmt.Errorf("kernel image %s: %w", path, err)
	}
	if magic[0] != 0x1f || magic[1] != 0x8b {
		return path, nil
	}
	raw := path + ".raw"
	if _, err := os.Stat(raw); err == nil {
		return raw, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		return "", fmt.Errorf("kernel image %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".raw-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := boundedfile.Copy(tmp, zr, "decompressed", 1<<30); err != nil {
		tmp.Close()
		return "", fmt.Errorf("decompressing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return raw, os.Rename(tmp.Name(), raw)
}
