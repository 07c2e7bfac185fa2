package rootfs

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// FindInit resolves init (an absolute path such as /sbin/init) inside the
// directory root, as the kernel will after the switch: absolute symlinks
// and ".." stay inside root (openat2 RESOLVE_IN_ROOT). It returns the
// resolved path inside root, which must be an executable regular file.
// Resolving in the initramfs instead would follow Debian's
// /sbin/init -> /lib/systemd/systemd into the wrong tree.
func FindInit(root, init string) (string, error) {
	if !strings.HasPrefix(init, "/") {
		return "", fmt.Errorf("init %q: not an absolute path", init)
	}
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("init %s: new root %s: %w", init, root, err)
	}
	defer unix.Close(dir)
	fd, err := unix.Openat2(dir, strings.TrimPrefix(init, "/"), &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return "", fmt.Errorf("no executable %s in the new root: %w", init, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", fmt.Errorf("init %s: %w", init, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o111 == 0 {
		return "", fmt.Errorf("no executable %s in the new root: not an executable file (mode %#o)", init, st.Mode)
	}
	// The resolved path, as the kernel names the open file; the root's
	// own path is its prefix.
	full, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return "", fmt.Errorf("init %s: %w", init, err)
	}
	base, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", fmt.Errorf("init %s: %w", init, err)
	}
	rel, err := filepath.Rel(base, full)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("init %s resolves outside the new root (%s)", init, full)
	}
	return "/" + rel, nil
}
