package devdiff

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Exports carry every Added, Modified and Meta entry in full (content and
// metadata: mode, owner, xattrs, mtime), the first path of each hard-linked
// upper inode, and later paths of such an inode as hard links to it. The
// deletion manifest (ManifestName) at the export's root lists what to
// remove first. Sockets cannot be carried and are left out.

// errManifestClash refuses an upper whose root holds a file named like the
// manifest.
var errManifestClash = fmt.Errorf("the upper has a file /%s, which the export needs for its deletion manifest", ManifestName)

// exportName is the archive member name for an image path: "./", "./a/b".
func exportName(p string) string {
	if p == "/" {
		return "./"
	}
	return "." + p
}

// TarWriter writes changes as a PAX tar: members named "./path", numeric
// owners, xattrs as SCHILY.xattr records (GNU tar --xattrs and bsdtar read
// them), hard links as link members, and the deletion manifest as the last
// member "./.mcinit-deleted".
type TarWriter struct {
	tw  *tar.Writer
	del *os.File // deletion manifest, spooled to disk until Close
}

// NewTarWriter starts a tar stream on w. Close finishes it (w is not closed).
func NewTarWriter(w io.Writer) (*TarWriter, error) {
	del, err := os.CreateTemp("", "mcinit-deleted-*")
	if err != nil {
		return nil, err
	}
	os.Remove(del.Name()) // unlinked: gone whatever happens next
	return &TarWriter{tw: tar.NewWriter(w), del: del}, nil
}

// Add writes one change.
func (t *TarWriter) Add(c *Change) error {
	if c.Path == "/"+ManifestName {
		return errManifestClash
	}
	if c.ReplacesLower() {
		if _, err := io.WriteString(t.del, manifestEntry(c.Path)); err != nil {
			return fmt.Errorf("deletion manifest: %w", err)
		}
	}
	if c.Kind == Deleted || c.Info.Type == TypeSocket {
		return nil
	}
	i := &c.Info
	h := &tar.Header{
		Name:    exportName(c.Path),
		Mode:    int64(i.Perm),
		Uid:     int(i.UID),
		Gid:     int(i.GID),
		ModTime: i.ModTime,
		Format:  tar.FormatPAX,
	}
	if len(i.Xattrs) > 0 {
		h.PAXRecords = make(map[string]string, len(i.Xattrs))
		for _, x := range i.Xattrs {
			h.PAXRecords["SCHILY.xattr."+x.Name] = string(x.Value)
		}
	}
	switch {
	case c.LinkTo != "":
		h.Typeflag, h.Linkname = tar.TypeLink, exportName(c.LinkTo)
	case i.Type == TypeFile:
		h.Typeflag, h.Size = tar.TypeReg, i.Size
	case i.Type == TypeDir:
		h.Typeflag = tar.TypeDir
	case i.Type == TypeSymlink:
		h.Typeflag, h.Linkname = tar.TypeSymlink, i.Target
	case i.Type == TypeFIFO:
		h.Typeflag = tar.TypeFifo
	case i.Type == TypeChar || i.Type == TypeBlock:
		h.Typeflag = tar.TypeChar
		if i.Type == TypeBlock {
			h.Typeflag = tar.TypeBlock
		}
		h.Devmajor, h.Devminor = int64(unix.Major(i.Rdev)), int64(unix.Minor(i.Rdev))
	}
	if err := t.tw.WriteHeader(h); err != nil {
		return fmt.Errorf("tar %s: %w", c.Path, err)
	}
	if h.Typeflag != tar.TypeReg {
		return nil
	}
	return copyContent(t.tw, c.Source, i.Size)
}

// Close appends the deletion manifest and finishes the archive.
func (t *TarWriter) Close() error {
	defer t.del.Close()
	size, err := t.del.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	if _, err := t.del.Seek(0, io.SeekStart); err != nil {
		return err
	}
	h := &tar.Header{
		Name: "./" + ManifestName, Typeflag: tar.TypeReg, Mode: 0o644, Size: size,
		ModTime: time.Unix(0, 0), Format: tar.FormatPAX,
	}
	if err := t.tw.WriteHeader(h); err != nil {
		return err
	}
	if _, err := io.Copy(t.tw, t.del); err != nil {
		return err
	}
	return t.tw.Close()
}

// copyContent streams exactly size bytes of src into w and fails when the
// file changed length since it was examined.
func copyContent(w io.Writer, src string, size int64) error {
	f, err := openRegular(src)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.CopyN(w, f, size)
	if err == io.EOF || (err == nil && n < size) {
		return fmt.Errorf("%s: shrank while being exported", src)
	}
	return err
}

// DirWriter writes changes as a directory tree with the deletion manifest
// at its root. Running as root keeps owners, device nodes and trusted.*
// xattrs.
type DirWriter struct {
	root string
	del  *os.File
	// open is the stack of directories written so far whose subtree is
	// still being filled; their mtimes are set when the walk leaves them.
	open []pendingDir
}

type pendingDir struct {
	path  string // image path
	mtime time.Time
}

// NewDirWriter creates dir (it must not exist, or be empty).
func NewDirWriter(dir string) (*DirWriter, error) {
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	if names, err := readNames(dir); err != nil {
		return nil, err
	} else if len(names) > 0 {
		return nil, fmt.Errorf("%s: not empty", dir)
	}
	del, err := os.OpenFile(filepath.Join(dir, ManifestName), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	return &DirWriter{root: dir, del: del}, nil
}

func (d *DirWriter) out(p string) string { return filepath.Join(d.root, filepath.FromSlash(p)) }

// Add writes one change.
func (d *DirWriter) Add(c *Change) error {
	if c.Path == "/"+ManifestName {
		return errManifestClash
	}
	if c.ReplacesLower() {
		if _, err := io.WriteString(d.del, manifestEntry(c.Path)); err != nil {
			return fmt.Errorf("deletion manifest: %w", err)
		}
	}
	if c.Kind == Deleted || c.Info.Type == TypeSocket {
		return nil
	}
	if err := d.leave(c.Path, false); err != nil {
		return err
	}
	if c.Path != "/" {
		if err := d.ensureDir(path.Dir(c.Path), filepath.Dir(c.Source)); err != nil {
			return err
		}
	}
	dst := d.out(c.Path)
	i := &c.Info
	var err error
	switch {
	case c.LinkTo != "":
		return os.Link(d.out(c.LinkTo), dst)
	case i.Type == TypeFile:
		err = writeFile(dst, c.Source, i.Size)
	case i.Type == TypeDir:
		if c.Path != "/" {
			err = os.Mkdir(dst, 0o700)
		}
		d.open = append(d.open, pendingDir{c.Path, i.ModTime})
	case i.Type == TypeSymlink:
		err = os.Symlink(i.Target, dst)
	case i.Type == TypeFIFO:
		err = unix.Mkfifo(dst, 0o600)
	case i.Type == TypeChar:
		err = unix.Mknod(dst, unix.S_IFCHR|0o600, int(i.Rdev))
	case i.Type == TypeBlock:
		err = unix.Mknod(dst, unix.S_IFBLK|0o600, int(i.Rdev))
	}
	if err != nil {
		return fmt.Errorf("export %s: %w", c.Path, err)
	}
	return setMeta(dst, i, i.Type != TypeDir)
}

// ensureDir creates the parents of an entry whose directories did not
// change themselves, copying their metadata from the upper.
func (d *DirWriter) ensureDir(p, src string) error {
	dst := d.out(p)
	if _, err := os.Lstat(dst); err == nil {
		return nil
	}
	if err := d.ensureDir(path.Dir(p), filepath.Dir(src)); err != nil {
		return err
	}
	w := walker{}
	i, err := w.stat(src, true)
	if err != nil {
		return err
	}
	i.Xattrs = ownXattrs(i.Xattrs)
	if err := os.Mkdir(dst, 0o700); err != nil {
		return err
	}
	d.open = append(d.open, pendingDir{p, i.ModTime})
	return setMeta(dst, i, false)
}

// leave sets the mtimes of the open directories that do not contain p
// (all of them when final), now that nothing more will be written there.
func (d *DirWriter) leave(p string, final bool) error {
	for len(d.open) > 0 {
		top := d.open[len(d.open)-1]
		if !final && (top.path == "/" || strings.HasPrefix(p, top.path+"/")) {
			return nil
		}
		d.open = d.open[:len(d.open)-1]
		ts := []unix.Timespec{unix.NsecToTimespec(top.mtime.UnixNano()), unix.NsecToTimespec(top.mtime.UnixNano())}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, d.out(top.path), ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("export %s: %w", top.path, err)
		}
	}
	return nil
}

// Close finishes the manifest and the directories' mtimes.
func (d *DirWriter) Close() error {
	if err := d.leave("", true); err != nil {
		d.del.Close()
		return err
	}
	return d.del.Close()
}

func writeFile(dst, src string, size int64) error {
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := copyContent(f, src, size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// setMeta applies owner, then mode (chown clears setuid), xattrs and, for
// non-directories, mtime.
func setMeta(dst string, i *Info, times bool) error {
	if err := os.Lchown(dst, int(i.UID), int(i.GID)); err != nil {
		return err
	}
	if i.Type != TypeSymlink {
		if err := unix.Chmod(dst, i.Perm); err != nil {
			return &os.PathError{Op: "chmod", Path: dst, Err: err}
		}
	}
	for _, x := range i.Xattrs {
		if err := unix.Lsetxattr(dst, x.Name, x.Value, 0); err != nil {
			return &os.PathError{Op: "lsetxattr " + x.Name, Path: dst, Err: err}
		}
	}
	if !times {
		return nil
	}
	ts := []unix.Timespec{unix.NsecToTimespec(i.ModTime.UnixNano()), unix.NsecToTimespec(i.ModTime.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimensat", Path: dst, Err: err}
	}
	return nil
}
