package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// MoveMounts are the mounts carried into the new root.
var MoveMounts = []string{"/dev", "/proc", "/sys", "/run"}

// SwitchRoot moves /dev, /proc, /sys and /run into newRoot, makes newRoot
// the root, frees the initramfs (it is deleted file by file: rootfs memory
// can't be unmounted) and execs init with argv and env. It only returns on
// error. Unlike u-root's mount.SwitchRoot it checks newRoot first and passes
// arguments and an environment.
func SwitchRoot(newRoot, init string, argv, env []string) error {
	var st unix.Stat_t
	if err := unix.Stat(newRoot, &st); err != nil {
		return fmt.Errorf("switch_root: %w", err)
	}
	var parent unix.Stat_t
	if err := unix.Stat(filepath.Dir(newRoot), &parent); err != nil {
		return fmt.Errorf("switch_root: %w", err)
	}
	if st.Dev == parent.Dev {
		return fmt.Errorf("switch_root: %s is not a mount point", newRoot)
	}
	initPath := filepath.Join(newRoot, init)
	if fi, err := os.Stat(initPath); err != nil || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("switch_root: no executable %s in the new root", init)
	}
	for _, m := range MoveMounts {
		dst := filepath.Join(newRoot, m)
		if err := unix.Mount(m, dst, "", unix.MS_MOVE, ""); err != nil {
			// A missing directory in the root image means the mount is
			// dropped; the real init remounts what it needs.
			if err2 := unix.Unmount(m, unix.MNT_DETACH); err2 != nil && !errors.Is(err2, unix.EINVAL) {
				return fmt.Errorf("switch_root: moving %s: %w", m, err)
			}
		}
	}
	if err := unix.Chdir(newRoot); err != nil {
		return fmt.Errorf("switch_root: %w", err)
	}
	oldRoot, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("switch_root: %w", err)
	}
	if err := unix.Mount(newRoot, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("switch_root: moving the new root to /: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("switch_root: chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("switch_root: %w", err)
	}
	freeInitramfs(oldRoot)
	unix.Close(oldRoot)
	if err := unix.Exec(init, argv, env); err != nil {
		return fmt.Errorf("switch_root: exec %s: %w", init, err)
	}
	return nil
}

// freeInitramfs deletes everything on the old root's filesystem, staying
// off other filesystems.
func freeInitramfs(dirfd int) {
	var st unix.Stat_t
	if err := unix.Fstat(dirfd, &st); err != nil {
		return
	}
	removeTree(dirfd, st.Dev)
}

func removeTree(dirfd int, dev uint64) {
	// Read the names through a dup so closing the *os.File does not close dirfd.
	fd, err := unix.Dup(dirfd)
	if err != nil {
		return
	}
	d := os.NewFile(uintptr(fd), "dir")
	names, _ := d.Readdirnames(-1)
	d.Close()
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue
		}
		if st.Dev != dev {
			continue // another filesystem (the new root's mount point)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			child, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
			if err == nil {
				removeTree(child, dev)
				unix.Close(child)
			}
			_ = unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
			continue
		}
		_ = unix.Unlinkat(dirfd, name, 0)
	}
}
