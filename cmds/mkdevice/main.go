// Command mkdevice builds mcinit's device payloads (the initramfs /init,
// with and without the rescue commands) for one or more architectures into
// DIR/<arch>/init.cpio and init-rescue.cpio, and writes DIR/<arch>/source,
// the digest of the sources they were built from. `make build` runs it into
// out/device beside out/mcinit; `mcinit initramfs` then packs images from
// those files without the source tree or a Go toolchain. Run it from the
// mcinit source tree.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mcinit/mcinit/initramfs"
	"github.com/mcinit/mcinit/initramfs/device"
)

func main() {
	out := flag.String("o", "", "payload directory to write (required)")
	archs := flag.String("arch", "amd64", "comma-separated architectures: amd64, arm64")
	src := flag.String("src", ".", "the mcinit source tree")
	flag.Parse()
	if err := run(*out, *archs, *src); err != nil {
		fmt.Fprintln(os.Stderr, "mkdevice:", err)
		os.Exit(1)
	}
}

func run(out, archs, src string) error {
	if out == "" {
		return fmt.Errorf("-o is required")
	}
	src, err := filepath.Abs(src)
	if err != nil {
		return err
	}
	id, err := initramfs.SourceID(src)
	if err != nil {
		return err
	}
	for _, arch := range strings.Split(archs, ",") {
		if current(out, arch, id) {
			continue // built from these very sources already
		}
		for _, rescue := range []bool{false, true} {
			b, err := device.Build(arch, rescue, src, "", nil)
			if err != nil {
				return err
			}
			p := filepath.Join(out, initramfs.DeviceFile(arch, rescue))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := writeAtomic(p, b); err != nil {
				return err
			}
		}
		if err := writeAtomic(filepath.Join(out, arch, "source"), []byte(id+"\n")); err != nil {
			return err
		}
	}
	return nil
}

// writeAtomic writes through a unique temporary file, so concurrent builds
// into one cache never expose a partial file.
func writeAtomic(p string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(p), ".mkdevice-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}

// current says whether out holds both payloads for arch, stamped with id.
func current(out, arch, id string) bool {
	stamp, err := os.ReadFile(filepath.Join(out, arch, "source"))
	if err != nil || strings.TrimSpace(string(stamp)) != id {
		return false
	}
	for _, rescue := range []bool{false, true} {
		if _, err := os.Stat(filepath.Join(out, initramfs.DeviceFile(arch, rescue))); err != nil {
			return false
		}
	}
	return true
}
