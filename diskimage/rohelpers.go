package diskimage

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ROHelperMounts are the volatile directories ApplyROHelpers gives a
// read-only root: tmpfs mounts through /etc/fstab, which systemd (its
// fstab generator) and sysvinit/busybox (mount -a) both read.
var ROHelperMounts = []string{
	"tmpfs /tmp tmpfs mode=1777,nosuid,nodev 0 0",
	"tmpfs /var/tmp tmpfs mode=1777,nosuid,nodev 0 0",
}

// ApplyROHelpers prepares the tree at dir to run from a read-only root
// (opt-in: `mcinit image -ro-helpers`):
//   - /tmp and /var/tmp become tmpfs mounts (lines added to /etc/fstab,
//     unless it already mounts them);
//   - /etc/machine-id becomes an empty file: systemd then generates a
//     machine ID per boot and mounts it over the file (or takes
//     systemd.machine_id= from the command line); a file that holds an ID
//     would give every unit built from the image the same ID.
//
// It changes dir in place; callers pass a copy of the user's tree.
func ApplyROHelpers(dir string) error {
	etc := filepath.Join(dir, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return fmt.Errorf("diskimage: ro helpers: %w", err)
	}
	fstab := filepath.Join(etc, "fstab")
	old, err := os.ReadFile(fstab)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("diskimage: ro helpers: %w", err)
	}
	var add bytes.Buffer
	for _, l := range ROHelperMounts {
		mnt := strings.Fields(l)[1]
		if !fstabMounts(old, mnt) {
			add.WriteString(l + "\n")
		}
	}
	if add.Len() > 0 {
		b := append([]byte(nil), old...)
		if len(b) > 0 && b[len(b)-1] != '\n' {
			b = append(b, '\n')
		}
		b = append(b, "# volatile directories for a read-only root (mcinit image -ro-helpers)\n"...)
		b = append(b, add.Bytes()...)
		if err := os.WriteFile(fstab, b, 0o644); err != nil {
			return fmt.Errorf("diskimage: ro helpers: %w", err)
		}
	}
	mid := filepath.Join(etc, "machine-id")
	if err := os.WriteFile(mid, nil, 0o444); err != nil {
		return fmt.Errorf("diskimage: ro helpers: %w", err)
	}
	return os.Chmod(mid, 0o444)
}

// fstabMounts reports whether fstab text mounts something on mnt.
func fstabMounts(fstab []byte, mnt string) bool {
	for _, l := range strings.Split(string(fstab), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && !strings.HasPrefix(f[0], "#") && filepath.Clean(f[1]) == mnt {
			return true
		}
	}
	return false
}

// copyTree copies src to dst keeping owners, modes, xattrs and links
// (cp -a), for changes that must not touch the user's tree.
func copyTree(src, dst string) error {
	if out, err := exec.Command("cp", "-a", "--", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("diskimage: copying %s: %v: %s", src, err, strings.TrimSpace(string(out)))
	}
	return nil
}
