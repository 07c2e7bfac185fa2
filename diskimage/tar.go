package diskimage

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ExtractTar unpacks a tar archive (e.g. `tar --xattrs --numeric-owner -c`
// of a debootstrap tree) into dir, keeping numeric ownership, modes
// (setuid, setgid, sticky), extended attributes (SCHILY.xattr.*, e.g.
// security.capability), symlinks, hard links and device nodes. Times are
// not kept: the filesystem builders fix them.
//
// Every path stays inside dir (os.Root), whatever the archive's names and
// symlinks say. Keeping foreign ownership, capabilities and device nodes
// needs CAP_CHOWN, CAP_SETFCAP and CAP_MKNOD (root, or a CI container);
// without them the error says which entry could not be kept, never a
// silently different tree.
func ExtractTar(r io.Reader, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("diskimage: tar: %w", err)
	}
	defer root.Close()
	type dirMode struct {
		name string
		mode fs.FileMode
	}
	var dirs []dirMode
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("diskimage: tar: %w", err)
		}
		name, ok := tarName(h.Name)
		if !ok {
			return fmt.Errorf("diskimage: tar: entry %q leaves the tree", h.Name)
		}
		if name == "." {
			if h.Typeflag == tar.TypeDir {
				dirs = append(dirs, dirMode{name, tarMode(h)})
				if err := keepOwner(root, name, h); err != nil {
					return err
				}
			}
			continue
		}
		if err := extractEntry(root, tr, name, h); err != nil {
			return fmt.Errorf("diskimage: tar: %s: %w", h.Name, err)
		}
		if h.Typeflag == tar.TypeDir {
			dirs = append(dirs, dirMode{name, tarMode(h)})
		}
	}
	// Directory modes last, deepest first: a 0555 directory must not stop
	// its own entries from being written.
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].name > dirs[j].name })
	for _, d := range dirs {
		if err := root.Chmod(d.name, d.mode); err != nil {
			return fmt.Errorf("diskimage: tar: %s: %w", d.name, err)
		}
	}
	return nil
}

// tarName cleans an archive name into a local path ("." for the top).
func tarName(n string) (string, bool) {
	n = path.Clean(strings.TrimLeft(n, "/"))
	if n == "" || n == "." {
		return ".", true
	}
	if n == ".." || strings.HasPrefix(n, "../") {
		return "", false
	}
	return n, true
}

// tarMode turns the header's mode bits into an fs.FileMode with the
// setuid, setgid and sticky bits in Go's representation.
func tarMode(h *tar.Header) fs.FileMode {
	m := fs.FileMode(h.Mode & 0o777)
	if h.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if h.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if h.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

func extractEntry(root *os.Root, tr *tar.Reader, name string, h *tar.Header) error {
	if d := path.Dir(name); d != "." {
		// GNU tar lists parents first; archives that do not get 0755 parents.
		if err := root.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	switch h.Typeflag {
	case tar.TypeDir:
		if err := root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	case tar.TypeReg:
		if err := removeExisting(root, name); err != nil {
			return err
		}
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, tr); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := removeExisting(root, name); err != nil {
			return err
		}
		if err := root.Symlink(h.Linkname, name); err != nil {
			return err
		}
		// Symlinks keep only their owner; their mode is always 0777.
		return keepOwner(root, name, h)
	case tar.TypeLink:
		target, ok := tarName(h.Linkname)
		if !ok || target == "." {
			return fmt.Errorf("hard link to %q leaves the tree", h.Linkname)
		}
		if err := removeExisting(root, name); err != nil {
			return err
		}
		// The link shares the target's inode: owner, mode and xattrs included.
		return root.Link(target, name)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if err := removeExisting(root, name); err != nil {
			return err
		}
		if err := mknod(root, name, h); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unsupported tar entry type %q", h.Typeflag)
	}
	if err := keepOwner(root, name, h); err != nil {
		return err
	}
	if h.Typeflag != tar.TypeDir {
		// chown clears setuid/setgid, so the mode comes after it.
		if err := root.Chmod(name, tarMode(h)); err != nil {
			return err
		}
	}
	return keepXattrs(root, name, h)
}

func removeExisting(root *os.Root, name string) error {
	if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// keepOwner sets the numeric owner; a failure as an unprivileged user is
// an error (the image would silently differ from the archive).
func keepOwner(root *os.Root, name string, h *tar.Header) error {
	fi, err := root.Lstat(name)
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == h.Uid && int(st.Gid) == h.Gid {
		return nil
	}
	if err := root.Lchown(name, h.Uid, h.Gid); err != nil {
		return fmt.Errorf("keeping owner %d:%d: %w (extracting a tree with foreign owners needs root or CAP_CHOWN)", h.Uid, h.Gid, err)
	}
	return nil
}

// keepXattrs applies the archive's SCHILY.xattr.* records.
func keepXattrs(root *os.Root, name string, h *tar.Header) error {
	const prefix = "SCHILY.xattr."
	var keys []string
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	sort.Strings(keys)
	var set func(attr string, v []byte) error
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeDir:
		f, err := root.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		set = func(attr string, v []byte) error { return unix.Fsetxattr(int(f.Fd()), attr, v, 0) }
	default:
		// Devices must not be opened and symlinks not followed: an O_PATH
		// descriptor takes xattrs through its /proc/self/fd link.
		f, err := root.OpenFile(name, unix.O_PATH|unix.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		p := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
		set = func(attr string, v []byte) error { return unix.Setxattr(p, attr, v, 0) }
	}
	for _, k := range keys {
		attr := strings.TrimPrefix(k, prefix)
		if err := set(attr, []byte(h.PAXRecords[k])); err != nil {
			return fmt.Errorf("keeping xattr %s: %w (security.* attributes such as file capabilities need root or CAP_SETFCAP)", attr, err)
		}
	}
	return nil
}

func mknod(root *os.Root, name string, h *tar.Header) error {
	parent, err := root.Open(path.Dir(name))
	if err != nil {
		return err
	}
	defer parent.Close()
	mode := uint32(h.Mode & 0o777)
	switch h.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	case tar.TypeFifo:
		mode |= unix.S_IFIFO
	}
	dev := unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))
	if err := unix.Mknodat(int(parent.Fd()), path.Base(name), mode, int(dev)); err != nil {
		return fmt.Errorf("mknod: %w (device nodes need root or CAP_MKNOD)", err)
	}
	return nil
}

func extractTarFile(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return fmt.Errorf("diskimage: %w", err)
	}
	defer f.Close()
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("diskimage: %w", err)
	}
	br := bufio.NewReader(f)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("diskimage: %s: %w", archive, err)
		}
		defer zr.Close()
		r = zr
	}
	if err := ExtractTar(r, dir); err != nil {
		return fmt.Errorf("%w (archive %s)", err, archive)
	}
	return nil
}
