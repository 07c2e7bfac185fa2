// Package devdiff lists and exports what a development boot changed: it
// reads an overlayfs upper directory next to its lower (the original
// image) and reports each added, modified, deleted, metadata-only changed
// and opaque entry, as overlayfs itself would resolve them.
//
// The walk streams: it holds one directory's names per level of depth and
// compares file contents chunk by chunk, never whole files or trees. The
// only map it keeps is of upper inodes with more than one link, so hard
// links can be carried into an export. Workers (one per CPU) stat, read
// xattrs and compare contents a bounded window of names ahead of the
// entry being reported; reporting itself stays in order on one goroutine.
package devdiff

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Kind is the class of one change, printed as the first column of a listing.
type Kind byte

const (
	Added    Kind = 'A' // not in the lower
	Modified Kind = 'M' // content, symlink target, device number or file type differ
	Deleted  Kind = 'D' // in the lower, gone from the merged view
	Meta     Kind = 'm' // same content; mode, owner, xattrs, hard links (or mtime) differ
	// Unchanged entries are reported only when an export needs them: the
	// first path of a hard-linked inode (later links point at it) and an
	// opaque directory whose own metadata did not change.
	Unchanged Kind = '='
)

// FileType names a file's type as it appears in listings.
type FileType string

const (
	TypeFile    FileType = "file"
	TypeDir     FileType = "dir"
	TypeSymlink FileType = "symlink"
	TypeFIFO    FileType = "fifo"
	TypeChar    FileType = "char"
	TypeBlock   FileType = "block"
	TypeSocket  FileType = "socket"
)

// Info is the state of one file in a layer.
type Info struct {
	Type    FileType
	Perm    uint32 // permission, setuid, setgid and sticky bits (07777)
	UID     uint32
	GID     uint32
	Size    int64
	ModTime time.Time
	Rdev    uint64 // device number of char and block nodes
	Target  string // symlink target
	Nlink   uint64
	Xattrs  []Xattr // sorted by name; overlayfs's own xattrs removed
	dev     uint64
	ino     uint64
}

// Change is one entry of the difference between the lower and the merged view.
type Change struct {
	Kind Kind
	Path string // slash-separated, rooted at the image: "/", "/etc/hostname"
	// Opaque is set on an upper directory that hides all lower content
	// below it (removed and recreated during development).
	Opaque bool
	// Why lists what differs for Modified and Meta: "type", "content",
	// "target", "rdev", "mode", "owner", "xattrs", "mtime", "hardlink".
	Why []string
	// Info is the entry in the upper; for Deleted, the entry that was in
	// the lower.
	Info Info
	// Lower is the entry the lower had at Path, nil when there was none.
	Lower *Info
	// LinkTo is an earlier reported Path sharing this entry's upper inode.
	LinkTo string
	// Source is the file in the upper layer to read content from; empty
	// for Deleted.
	Source string
}

// ReplacesLower reports whether applying the change must first remove
// what the source tree has at Path: a deletion, or a change of file type.
func (c *Change) ReplacesLower() bool {
	return c.Kind == Deleted || (c.Lower != nil && c.Lower.Type != c.Info.Type)
}

// Options adjust what counts as a change.
type Options struct {
	// CompareTimes reports an mtime difference of non-directories as a
	// metadata change. Off by default: copy-up keeps mtimes, but builds
	// and editors touch files without changing them.
	CompareTimes bool
}

// Walk compares the overlay upper directory with its lower directory and
// calls fn for each change, parents before children and names in byte
// order within a directory. It stops at the first error, fn's included.
func Walk(upper, lower string, opts Options, fn func(*Change) error) error {
	w := &walker{
		opts:  opts,
		fn:    fn,
		links: map[devIno]*linkHead{},
	}
	// /run/mcinit/upper is a symlink into the upper's filesystem.
	u, err := filepath.EvalSymlinks(upper)
	if err != nil {
		return fmt.Errorf("upper %s: %w", upper, err)
	}
	l, err := filepath.EvalSymlinks(lower)
	if err != nil {
		return fmt.Errorf("lower %s: %w", lower, err)
	}
	upper, lower = u, l
	ui, err := w.stat(upper, true)
	if err != nil {
		return fmt.Errorf("upper: %w", err)
	}
	li, err := w.stat(lower, true)
	if err != nil {
		return fmt.Errorf("lower: %w", err)
	}
	if ui.Type != TypeDir {
		return fmt.Errorf("upper %s: not a directory", upper)
	}
	if li.Type != TypeDir {
		return fmt.Errorf("lower %s: not a directory", lower)
	}
	ui.Xattrs, li.Xattrs = ownXattrs(ui.Xattrs), ownXattrs(li.Xattrs)
	stop := w.startWorkers(runtime.GOMAXPROCS(0))
	err = w.entry("/", upper, ui, rolePlain, lower, li, "")
	stop()
	if err != nil {
		return err
	}
	return w.checkIndexLinks()
}

// buffers are one worker's content comparison buffers.
type buffers struct{ a, b []byte }

// startWorkers starts n goroutines running the walk's jobs; the returned
// function stops them once every job has been taken. Workers never wait on
// the reporting goroutine, so it may always block on a job's result.
func (w *walker) startWorkers(n int) (stop func()) {
	w.jobs = make(chan func(*buffers), 4*chunksAhead)
	var wg sync.WaitGroup
	for range max(n, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := &buffers{make([]byte, 64<<10), make([]byte, 64<<10)}
			for job := range w.jobs {
				job(b)
			}
		}()
	}
	return func() {
		close(w.jobs)
		wg.Wait()
	}
}

// checkIndexLinks refuses an upper where a lower hard-linked file was
// copied up with overlay index=on: its other lower names now show the
// upper inode through the index (in the work directory), so they changed
// too without appearing in the upper. Such an inode has links the walk did
// not find, and had several names in the lower.
func (w *walker) checkIndexLinks() error {
	var bad []string
	for _, h := range w.links {
		if h.seen < h.nlink && h.lowerNlink > 1 {
			bad = append(bad, h.path)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return fmt.Errorf("%s (and %d more): a hard-linked lower file copied up with overlay index=on changes its other lower names too: mount the overlay with index=off", bad[0], len(bad)-1)
}

type devIno struct{ dev, ino uint64 }

// linkHead is the first reported path of a hard-linked upper inode, with
// the lower inode that path had (zero when none), and how many of the
// inode's links the walk found.
type linkHead struct {
	path       string
	lower      devIno
	lowerNlink uint64
	nlink      uint64
	seen       uint64
}

type walker struct {
	opts  Options
	fn    func(*Change) error
	links map[devIno]*linkHead // touched only by the reporting goroutine
	jobs  chan func(*buffers)  // run by the workers
	depth int
	// noListxattrat is set once listxattrat(2) turned out to be missing.
	noListxattrat atomic.Bool
}

// Names go to the workers in chunks of chunkSize consecutive names, one
// hand-off per chunk rather than per name (a hand-off per name cost more
// CPU in the scheduler than the system calls it spread over the cores).
// lookahead bounds how many names of one directory are examined ahead of
// the one being reported: chunksAhead chunks (per level of depth, so a
// subdirectory never waits for room taken by its parent).
const (
	chunkSize   = 64
	chunksAhead = 4
	lookahead   = chunkSize * chunksAhead
)

// chunk is the prepared state of consecutive names of one directory.
type chunk struct {
	done chan struct{}
	ps   []prepared
}

// prepared is what the workers find out about one upper name: everything
// that needs system calls, so reporting only decides and orders.
type prepared struct {
	up, lp string // upper path; lower path ("" without a lower directory)
	ui, li *Info  // li nil when the lower has no such name
	r      role
	why    string // content difference when both sides have the same type
	err    error
}

// maxHeldDirs bounds the directory descriptors the walk keeps open (two
// per level); deeper levels fall back to full paths.
const maxHeldDirs = 128

// dirAt names a directory by path and, while the walk holds it open, by
// descriptor, so entries are examined with fstatat(2) instead of resolving
// the whole path again for each.
type dirAt struct {
	path string
	fd   int // unix.AT_FDCWD when not held
}

// at returns the (dirfd, name) pair for an entry of d.
func (d dirAt) at(name string) (int, string) {
	if d.fd == unix.AT_FDCWD {
		return d.fd, joinName(d.path, name)
	}
	return d.fd, name
}

// joinName is filepath.Join for a clean directory path and a name read
// from it (never empty, never holding a slash), without Join's Clean: the
// walk joins every name it meets.
func joinName(dir, name string) string {
	switch dir {
	case ".":
		return name
	case "/":
		return "/" + name
	}
	return dir + "/" + name
}

// openDir lists a directory sorted bytewise and, when hold is set, keeps
// it open; the caller calls the returned close function.
func openDir(dir string, hold bool) (dirAt, []string, func(), error) {
	f, err := os.Open(dir)
	if err != nil {
		return dirAt{}, nil, nil, err
	}
	names, err := f.Readdirnames(-1)
	if err != nil {
		f.Close()
		return dirAt{}, nil, nil, fmt.Errorf("read directory %s: %w", dir, err)
	}
	sort.Strings(names)
	if !hold {
		f.Close()
		return dirAt{dir, unix.AT_FDCWD}, names, func() {}, nil
	}
	return dirAt{dir, int(f.Fd())}, names, func() { f.Close() }, nil
}

// dir walks one upper directory. lowerDir is the matching lower directory,
// "" when there is none; opaque says the lower entries are hidden, so each
// lower name the upper lacks is a deletion, reported in name order.
func (w *walker) dir(rel, upperDir, lowerDir string, opaque bool) error {
	w.depth++
	defer func() { w.depth-- }()
	hold := w.depth <= maxHeldDirs
	ud, names, closeU, err := openDir(upperDir, hold)
	if err != nil {
		return err
	}
	defer closeU()
	var ld dirAt
	var hidden []string
	if lowerDir != "" {
		var lnames []string
		var closeL func()
		if ld, lnames, closeL, err = openDir(lowerDir, hold); err != nil {
			return err
		}
		defer closeL()
		if opaque {
			hidden = lnames
		}
	}
	// Chunks go to the workers up to chunksAhead ahead of the one being
	// reported. Jobs use ud and ld: all must finish before the deferred
	// closes.
	var queue []*chunk
	submitted := 0
	defer func() {
		for _, c := range queue {
			<-c.done
		}
	}()
	for first := 0; first < len(names); first += chunkSize {
		for submitted < len(names) && len(queue) < chunksAhead {
			batch := names[submitted:min(submitted+chunkSize, len(names))]
			c := &chunk{done: make(chan struct{}), ps: make([]prepared, len(batch))}
			w.jobs <- func(b *buffers) {
				defer close(c.done)
				for i, n := range batch {
					c.ps[i].err = w.prepare(ud, ld, n, &c.ps[i], b)
				}
			}
			queue = append(queue, c)
			submitted += len(batch)
		}
		c := queue[0]
		queue = queue[1:]
		<-c.done
		for i := range c.ps {
			name := names[first+i]
			for len(hidden) > 0 && hidden[0] <= name {
				if hidden[0] != name {
					if err := w.hiddenLower(rel, ld, hidden[0]); err != nil {
						return err
					}
				}
				hidden = hidden[1:]
			}
			if err := w.upperName(rel, name, &c.ps[i]); err != nil {
				return err
			}
		}
	}
	for _, name := range hidden {
		if err := w.hiddenLower(rel, ld, name); err != nil {
			return err
		}
	}
	return nil
}

// hiddenLower reports a lower entry hidden by an opaque directory.
func (w *walker) hiddenLower(rel string, ld dirAt, name string) error {
	fd, n := ld.at(name)
	li, err := w.statAt(fd, n, joinName(ld.path, name), false)
	if err != nil {
		return err
	}
	return w.fn(&Change{Kind: Deleted, Path: path.Join(rel, name), Info: *li, Lower: li})
}

// prepare runs on a worker: it reads one upper name's state, classifies it
// and, when the lower has an entry of the same type, compares the two
// (ld.path is "" when there is no lower directory).
func (w *walker) prepare(ud, ld dirAt, name string, p *prepared, b *buffers) error {
	p.up = joinName(ud.path, name)
	ufd, un := ud.at(name)
	ui, err := w.statAt(ufd, un, p.up, true)
	if err != nil {
		return err
	}
	if p.r, err = classify(ui.mode(), ui.Rdev, ui.Size, ui.Xattrs); err != nil {
		return fmt.Errorf("%s: %w", p.up, err)
	}
	ui.Xattrs = ownXattrs(ui.Xattrs)
	p.ui = ui
	if ld.path == "" {
		return nil
	}
	p.lp = joinName(ld.path, name)
	lfd, ln := ld.at(name)
	if p.li, err = w.statIfExists(lfd, ln, p.lp); err != nil {
		return err
	}
	if p.r != roleWhiteout && p.li != nil && p.li.Type == ui.Type {
		p.why, err = contentDiff(b, entryAt{ufd, un, p.up}, ui, entryAt{lfd, ln, p.lp}, p.li)
	}
	return err
}

// upperName reports one name of an upper directory from what the workers
// prepared.
func (w *walker) upperName(rel, name string, p *prepared) error {
	if p.err != nil {
		return p.err
	}
	rp := path.Join(rel, name)
	if p.r == roleWhiteout {
		if p.li == nil {
			return nil
		}
		return w.fn(&Change{Kind: Deleted, Path: rp, Info: *p.li, Lower: p.li})
	}
	return w.entry(rp, p.up, p.ui, p.r, p.lp, p.li, p.why)
}

// entry classifies one upper entry that is not a whiteout and reports it.
// lp/li are the lower path and its state (li nil when absent); why is the
// content difference found when both have the same type.
func (w *walker) entry(p, up string, ui *Info, r role, lp string, li *Info, why string) error {
	// Overlayfs marks some new directories opaque too; report it only
	// where it hides a lower directory.
	opaque := r == roleOpaqueDir && li != nil && li.Type == TypeDir
	c := &Change{Path: p, Info: *ui, Lower: li, Source: up, Kind: Unchanged, Opaque: opaque}
	switch {
	case li == nil:
		c.Kind = Added
	case li.Type != ui.Type:
		c.Kind, c.Why = Modified, []string{"type"}
	default:
		if why != "" {
			c.Kind, c.Why = Modified, []string{why}
		}
		if meta := w.metaDiff(ui, li); len(meta) > 0 {
			c.Why = append(c.Why, meta...)
			if c.Kind == Unchanged {
				c.Kind = Meta
			}
		}
	}
	report := c.Kind != Unchanged || c.Opaque
	if ui.Type != TypeDir && ui.Nlink > 1 {
		// Overlayfs copies up files one by one, so an upper inode with
		// several names was linked during development (or by the lower
		// image, re-linked at copy-up with index=on).
		key := devIno{ui.dev, ui.ino}
		var lowerKey devIno
		var lowerNlink uint64
		if li != nil {
			lowerKey, lowerNlink = devIno{li.dev, li.ino}, li.Nlink
		}
		if head, ok := w.links[key]; ok {
			head.seen++
			c.LinkTo = head.path
			if c.Kind == Unchanged && (li == nil || head.lower != lowerKey) {
				c.Kind, c.Why = Meta, append(c.Why, "hardlink")
			}
		} else {
			w.links[key] = &linkHead{path: p, lower: lowerKey, lowerNlink: lowerNlink, nlink: ui.Nlink, seen: 1}
		}
		report = true
	}
	if report {
		if err := w.fn(c); err != nil {
			return err
		}
	}
	if ui.Type != TypeDir {
		return nil
	}
	if li == nil || li.Type != TypeDir {
		lp = ""
	}
	return w.dir(p, up, lp, opaque)
}

// contentDiff names the content difference between two entries of the
// same type, or returns "". File contents are read only when the sizes
// are equal.
func contentDiff(b *buffers, up entryAt, ui *Info, lp entryAt, li *Info) (string, error) {
	switch ui.Type {
	case TypeFile:
		same, err := sameBytes(b, up, ui.Size, lp, li.Size)
		if err != nil || same {
			return "", err
		}
		return "content", nil
	case TypeSymlink:
		if ui.Target != li.Target {
			return "target", nil
		}
	case TypeChar, TypeBlock:
		if ui.Rdev != li.Rdev {
			return "rdev", nil
		}
	}
	return "", nil
}

func (w *walker) metaDiff(ui, li *Info) []string {
	var why []string
	// Symlink permissions are always 0777 on Linux and carry no meaning.
	if ui.Perm != li.Perm && ui.Type != TypeSymlink {
		why = append(why, "mode")
	}
	if ui.UID != li.UID || ui.GID != li.GID {
		why = append(why, "owner")
	}
	if !equalXattrs(ui.Xattrs, li.Xattrs) {
		why = append(why, "xattrs")
	}
	if w.opts.CompareTimes && ui.Type != TypeDir && !ui.ModTime.Equal(li.ModTime) {
		why = append(why, "mtime")
	}
	return why
}

// entryAt is one directory entry named as dirAt.at names it, with its
// full path for messages.
type entryAt struct {
	dirfd      int
	name, path string
}

// sameBytes compares two files chunk by chunk, reading them through plain
// descriptors (no poller registration, no path resolution). It reads the
// size the open descriptors report and no further, so a file costs one
// read when it fits the buffer (no read only to meet the end).
func sameBytes(buf *buffers, a entryAt, asize int64, b entryAt, bsize int64) (bool, error) {
	if asize != bsize {
		return false, nil
	}
	fa, sa, err := openRegularSizeAt(a.dirfd, a.name, a.path)
	if err != nil {
		return false, err
	}
	defer unix.Close(fa)
	fb, sb, err := openRegularSizeAt(b.dirfd, b.name, b.path)
	if err != nil {
		return false, err
	}
	defer unix.Close(fb)
	if sa != sb {
		return false, nil // changed since the walk's stat
	}
	for left := sa; left > 0; {
		n := int(min(int64(len(buf.a)), left))
		na, err := readFull(fa, buf.a[:n])
		if err != nil {
			return false, &fs.PathError{Op: "read", Path: a.path, Err: err}
		}
		nb, err := readFull(fb, buf.b[:n])
		if err != nil {
			return false, &fs.PathError{Op: "read", Path: b.path, Err: err}
		}
		if na != nb || string(buf.a[:na]) != string(buf.b[:nb]) {
			return false, nil
		}
		if na < n {
			return true, nil // both shrank alike since their fstat
		}
		left -= int64(n)
	}
	return true, nil
}

// readFull fills p from fd; fewer bytes mean the end of the file.
func readFull(fd int, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Read(fd, p[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}

// openRegular opens a file the walk found to be regular, refusing it if
// it was swapped for a symlink, FIFO or device since (which could leak a
// file from outside the layer into an export, or block).
func openRegular(p string) (*os.File, error) {
	fd, err := openRegularAt(unix.AT_FDCWD, p, p)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), p), nil
}

// openRegularAt is openRegular of name relative to dirfd (p names it in
// messages); the caller closes the descriptor.
func openRegularAt(dirfd int, name, p string) (int, error) {
	fd, _, err := openRegularSizeAt(dirfd, name, p)
	return fd, err
}

// openRegularSizeAt is openRegularAt that also returns the file's size as
// the open descriptor sees it.
func openRegularSizeAt(dirfd int, name, p string) (int, int64, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, 0, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("%s: no longer a regular file", p)
	}
	return fd, st.Size, nil
}

func (w *walker) statIfExists(dirfd int, name, p string) (*Info, error) {
	i, err := w.statAt(dirfd, name, p, true)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return nil, nil
	}
	if i != nil {
		i.Xattrs = ownXattrs(i.Xattrs)
	}
	return i, err
}

// stat reads an entry's type, ownership, link target and (optionally)
// xattrs without following symlinks.
func (w *walker) stat(p string, xattrs bool) (*Info, error) {
	return w.statAt(unix.AT_FDCWD, p, p, xattrs)
}

// statAt is stat of name relative to dirfd; p is the same entry's full
// path, for the xattr calls (they have no *at form before Linux 6.13) and
// for messages.
func (w *walker) statAt(dirfd int, name, p string, xattrs bool) (*Info, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: p, Err: err}
	}
	i := &Info{
		Perm:    st.Mode & 0o7777,
		UID:     st.Uid,
		GID:     st.Gid,
		Size:    st.Size,
		ModTime: time.Unix(st.Mtim.Unix()),
		Nlink:   uint64(st.Nlink),
		dev:     uint64(st.Dev),
		ino:     st.Ino,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		i.Type = TypeFile
	case unix.S_IFDIR:
		i.Type = TypeDir
	case unix.S_IFLNK:
		i.Type = TypeSymlink
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return nil, &fs.PathError{Op: "readlink", Path: p, Err: err}
		}
		i.Target = string(buf[:n])
	case unix.S_IFIFO:
		i.Type = TypeFIFO
	case unix.S_IFCHR:
		i.Type, i.Rdev = TypeChar, uint64(st.Rdev)
	case unix.S_IFBLK:
		i.Type, i.Rdev = TypeBlock, uint64(st.Rdev)
	case unix.S_IFSOCK:
		i.Type = TypeSocket
	default:
		return nil, fmt.Errorf("%s: unknown file type %#o", p, st.Mode&unix.S_IFMT)
	}
	if i.Type != TypeFile {
		i.Size = 0
	}
	if xattrs {
		xs, err := w.readXattrs(dirfd, name, p)
		if err != nil {
			return nil, err
		}
		i.Xattrs = xs
	}
	return i, nil
}

// mode rebuilds an fs.FileMode type for classify.
func (i *Info) mode() fs.FileMode {
	m := fs.FileMode(i.Perm & 0o777)
	switch i.Type {
	case TypeDir:
		m |= fs.ModeDir
	case TypeSymlink:
		m |= fs.ModeSymlink
	case TypeFIFO:
		m |= fs.ModeNamedPipe
	case TypeChar:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case TypeBlock:
		m |= fs.ModeDevice
	case TypeSocket:
		m |= fs.ModeSocket
	}
	return m
}

// readNames lists a directory sorted bytewise.
func readNames(dir string) ([]string, error) {
	_, names, _, err := openDir(dir, false)
	return names, err
}

// readXattrs reads all xattrs of name relative to dirfd, p being the same
// entry's full path (not following symlinks). A filesystem without xattr
// support has none. Most entries have no xattrs, so listing them is the
// call that counts.
func (w *walker) readXattrs(dirfd int, name, p string) ([]Xattr, error) {
	buf, err := w.listXattrs(dirfd, name, p)
	if err != nil || len(buf) == 0 {
		return nil, err
	}
	names, err := parseXattrNames(buf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	xs := make([]Xattr, 0, len(names))
	for _, n := range names {
		v, err := xattrCall(p, "lgetxattr "+n, func(b []byte) (int, error) { return unix.Lgetxattr(p, n, b) })
		if errors.Is(err, unix.ENODATA) {
			continue // removed since the listing
		}
		if err != nil {
			return nil, err
		}
		xs = append(xs, Xattr{Name: n, Value: v})
	}
	return xs, nil
}

// listXattrs lists the xattr names of name relative to dirfd with
// listxattrat(2) (Linux 6.13), which resolves one path component where
// llistxattr(2) resolves the whole path p again; kernels without it (or a
// seccomp filter refusing it) get llistxattr.
func (w *walker) listXattrs(dirfd int, name, p string) ([]byte, error) {
	if !w.noListxattrat.Load() {
		buf, err := xattrCall(p, "listxattrat", func(b []byte) (int, error) { return listxattrat(dirfd, name, b) })
		if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EPERM) {
			return buf, err
		}
		w.noListxattrat.Store(true)
	}
	return xattrCall(p, "llistxattr", func(b []byte) (int, error) { return unix.Llistxattr(p, b) })
}

// listxattrat is listxattrat(2) with AT_SYMLINK_NOFOLLOW; x/sys has its
// number but no wrapper.
func listxattrat(dirfd int, name string, buf []byte) (int, error) {
	pn, err := unix.BytePtrFromString(name)
	if err != nil {
		return 0, err
	}
	var b unsafe.Pointer
	if len(buf) > 0 {
		b = unsafe.Pointer(&buf[0])
	}
	n, _, errno := unix.Syscall6(unix.SYS_LISTXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(pn)),
		unix.AT_SYMLINK_NOFOLLOW, uintptr(b), uintptr(len(buf)), 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// xattrCall runs a size-then-fetch xattr syscall, retrying when the value
// grew in between, and bounds the size.
func xattrCall(p, op string, call func([]byte) (int, error)) ([]byte, error) {
	for range 4 {
		n, err := call(nil)
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: p, Err: err}
		}
		if n > maxXattrValue {
			return nil, fmt.Errorf("%s %s: %d bytes exceeds %d", op, p, n, maxXattrValue)
		}
		if n == 0 {
			return []byte{}, nil
		}
		buf := make([]byte, n)
		n, err = call(buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: p, Err: err}
		}
		return buf[:n], nil
	}
	return nil, fmt.Errorf("%s %s: value keeps changing", op, p)
}
