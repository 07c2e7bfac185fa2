package rootfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// DetectFS names the filesystem on dev from its superblock magic; only
// the root filesystems mcinit supports are recognised.
func DetectFS(dev string) (string, error) {
	f, err := os.Open(dev)
	if err != nil {
		return "", fmt.Errorf("rootfs: %w", err)
	}
	defer f.Close()
	buf := make([]byte, 2048)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return "", fmt.Errorf("rootfs: reading superblock of %s: %w", dev, err)
	}
	return detectFS(buf)
}

func detectFS(b []byte) (string, error) {
	switch {
	case len(b) >= 1028 && binary.LittleEndian.Uint32(b[1024:]) == 0xe0f5e1e2:
		return "erofs", nil
	case len(b) >= 1082 && binary.LittleEndian.Uint16(b[1080:]) == 0xef53:
		return "ext4", nil
	case len(b) >= 4 && bytes.Equal(b[:4], []byte("hsqs")):
		return "squashfs", nil
	}
	return "", errors.New("rootfs: unknown filesystem (want erofs, ext4 or squashfs)")
}

// MountReadOnly mounts dev on target read-only, nodev.
func MountReadOnly(dev, target string) (string, error) {
	fstype, err := DetectFS(dev)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return "", fmt.Errorf("rootfs: %w", err)
	}
	data := ""
	if fstype == "ext4" {
		data = "noload" // no journal replay: the device is read-only
	}
	if err := unix.Mount(dev, target, fstype, unix.MS_RDONLY|unix.MS_NODEV, data); err != nil {
		return "", fmt.Errorf("rootfs: mount %s (%s) on %s: %w", dev, fstype, target, err)
	}
	return fstype, nil
}

// Overlay mounts an overlayfs on target with lower read-only and upper/work
// under upperBase (a tmpfs or a persistent partition mounted there).
func Overlay(lower, upperBase, target string) error {
	upper := filepath.Join(upperBase, "upper")
	work := filepath.Join(upperBase, "work")
	for _, d := range []string{upper, work, target} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("rootfs: overlay: %w", err)
		}
	}
	for _, p := range []string{lower, upper, work} {
		if strings.ContainsAny(p, ",:\\") {
			return fmt.Errorf("rootfs: overlay: path %q not allowed", p)
		}
	}
	// Pin the features devdiff cannot read back (redirects, metacopy,
	// the inode index), whatever the overlay module's defaults say.
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,redirect_dir=off,index=off,metacopy=off", lower, upper, work)
	if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
		return fmt.Errorf("rootfs: mount overlay (%s) on %s: %w", opts, target, err)
	}
	return nil
}

// MountTmpfs mounts a tmpfs (the development upper that vanishes).
func MountTmpfs(target string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	if err := unix.Mount("tmpfs", target, "tmpfs", unix.MS_NODEV|unix.MS_NOSUID, "mode=0755"); err != nil {
		return fmt.Errorf("rootfs: mount tmpfs on %s: %w", target, err)
	}
	return nil
}

// MountReadWrite mounts an ext4 partition read-write (persistent upper).
func MountReadWrite(dev, target string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	if err := unix.Mount(dev, target, "ext4", unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("rootfs: mount %s read-write on %s: %w", dev, target, err)
	}
	return nil
}

// BindReadOnly makes src visible read-only at target (the overlay's lower
// under /run/mcinit for devdiff).
func BindReadOnly(src, target string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("rootfs: bind %s on %s: %w", src, target, err)
	}
	if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("rootfs: remount %s read-only: %w", target, err)
	}
	return nil
}
