//go:build !mcinit_device

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/mcinit/mcinit/initramfs"
)

// devicePayload finds the device payload (/init as built by cmds/mkdevice)
// for arch and returns it with where it came from. In order: an explicit
// directory; device/ beside this program (installed with it by `make
// build`), then the source tree's out/device (inside a source tree either
// only when built from that very source); the cache keyed by the source
// digest, filled on first use with the Go toolchain. Packing itself never needs the toolchain.
func devicePayload(arch string, rescue bool, dir string) ([]byte, string, error) {
	rel := initramfs.DeviceFile(arch, rescue)
	if dir != "" {
		p := filepath.Join(dir, rel)
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, "", fmt.Errorf("device payload: %w", err)
		}
		return b, p, nil
	}
	src, srcErr := moduleRoot()
	var id string
	if srcErr == nil {
		var err error
		if id, err = initramfs.SourceID(src); err != nil {
			return nil, "", err
		}
	}
	var candidates []string
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), "device"))
	}
	if srcErr == nil {
		// What `make build` wrote, for a CLI built elsewhere (tests).
		candidates = append(candidates, filepath.Join(src, "out", "device"))
	}
	for _, d := range candidates {
		p := filepath.Join(d, rel)
		if b, err := os.ReadFile(p); err == nil {
			stamp, _ := os.ReadFile(filepath.Join(d, arch, "source"))
			if srcErr != nil || strings.TrimSpace(string(stamp)) == id {
				return b, p, nil
			}
		}
	}
	if srcErr != nil {
		return nil, "", fmt.Errorf("no device payload for %s beside this program (device/%s) and %v: run `make build` in the source tree, or pass -device DIR", arch, rel, srcErr)
	}
	cache := filepath.Join(cacheDir(), "device", id)
	p := filepath.Join(cache, rel)
	if b, err := os.ReadFile(p); err == nil {
		return b, p, nil
	}
	fmt.Fprintf(os.Stderr, "mcinit initramfs: building the %s device payload (once per source version) into %s\n", arch, cache)
	if err := buildDevice(src, cache, arch); err != nil {
		return nil, "", err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, "", fmt.Errorf("device payload: %w", err)
	}
	return b, p, nil
}

// cacheDir is $MCINIT_CACHE, else the user cache directory's mcinit/.
func cacheDir() string {
	if d := os.Getenv("MCINIT_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "mcinit")
	}
	return filepath.Join(os.TempDir(), "mcinit-cache")
}

// buildDevice runs cmds/mkdevice from the source tree. Its import-index
// side effect (a "goimports" directory in the user cache dir) goes to a
// temporary XDG_CACHE_HOME that is removed; GOCACHE stays the usual one so
// the build cache is kept.
func buildDevice(src, out, arch string) error {
	gocache, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		return fmt.Errorf("building the device payload needs the Go toolchain: %w", err)
	}
	xdg, err := os.MkdirTemp("", "mcinit-mkdevice-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(xdg)
	cmd := exec.Command("go", "run", "./cmds/mkdevice", "-arch", arch, "-o", out, "-src", src)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+xdg, "GOCACHE="+strings.TrimSpace(string(gocache)))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building the device payload (go run ./cmds/mkdevice): %w", err)
	}
	return nil
}
