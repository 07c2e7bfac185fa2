package diskimage

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"syscall"

	"golang.org/x/sys/unix"
)

// RootOptions describes the standard test root tree.
type RootOptions struct {
	// Init is the host path of testinit (built for the disk's arch),
	// installed as /sbin/init.
	Init string
	// Files adds host files: root path (e.g. "/usr/bin/mcinit") → host path.
	Files map[string]string
}

// Known files of the test root, for corruption tests: their content is
// fixed and unique, so it can be found on the disk (see Corrupt) and read
// back in the guest (testinit's read-file action).
const (
	KnownSmall = "/etc/mcinit-test/small.txt"
	KnownBlob  = "/etc/mcinit-test/blob.bin" // 256 KiB of pseudo-random bytes
)

// KnownFiles returns the known files' contents by root path.
func KnownFiles() map[string][]byte {
	return map[string][]byte{
		KnownSmall: []byte("mcinit test root: a small known file\n"),
		KnownBlob:  pseudoRandom("mcinit test blob", 256<<10),
	}
}

// pseudoRandom expands seed into n bytes (SHA-256 in counter mode).
func pseudoRandom(seed string, n int) []byte {
	out := make([]byte, 0, n+32)
	var ctr [8]byte
	for i := uint64(0); len(out) < n; i++ {
		binary.BigEndian.PutUint64(ctr[:], i)
		s := sha256.Sum256(append([]byte(seed), ctr[:]...))
		out = append(out, s[:]...)
	}
	return out[:n]
}

// WriteTestRoot fills dir (which should be empty) with the standard test
// root: testinit as /sbin/init, the usual mount points, the known files
// and the extra files.
func WriteTestRoot(dir string, o RootOptions) error {
	if o.Init == "" {
		return errors.New("diskimage: RootOptions.Init (testinit) is empty")
	}
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", "var", "etc", "sbin", "usr/bin", "etc/mcinit-test"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o777|fs.ModeSticky); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/os-release"),
		[]byte("ID=mcinit-test\nNAME=\"mcinit test root\"\n"), 0o644); err != nil {
		return err
	}
	for p, b := range KnownFiles() {
		if err := os.WriteFile(filepath.Join(dir, p), b, 0o644); err != nil {
			return err
		}
	}
	files := map[string]string{"/sbin/init": o.Init}
	for k, v := range o.Files {
		files[k] = v
	}
	for p, host := range files {
		clean := path.Clean("/" + p)
		if clean == "/" {
			return fmt.Errorf("diskimage: bad root path %q", p)
		}
		dst := filepath.Join(dir, clean)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := copyFile(host, dst, 0o755); err != nil {
			return fmt.Errorf("diskimage: root file %s: %w", p, err)
		}
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode)
}

// treeDigest hashes a tree's names, modes, link targets and contents (and
// with owners, numeric owners and xattrs), in sorted order: the seed for
// default UUIDs.
func treeDigest(dir string, owners bool) ([32]byte, error) {
	var d [32]byte
	type ent struct {
		rel string
		fi  fs.FileInfo
	}
	var ents []ent
	err := filepath.Walk(dir, func(p string, fi fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		ents = append(ents, ent{rel, fi})
		return nil
	})
	if err != nil {
		return d, fmt.Errorf("diskimage: root tree: %w", err)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].rel < ents[j].rel })
	h := sha256.New()
	for _, e := range ents {
		fmt.Fprintf(h, "%s\x00%o\x00", e.rel, e.fi.Mode())
		if owners {
			if err := hashOwner(h, filepath.Join(dir, e.rel), e.fi); err != nil {
				return d, err
			}
		}
		switch {
		case e.fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(filepath.Join(dir, e.rel))
			if err != nil {
				return d, err
			}
			h.Write([]byte(t))
		case e.fi.Mode().IsRegular():
			fd, err := fileDigest(filepath.Join(dir, e.rel))
			if err != nil {
				return d, err
			}
			h.Write(fd[:])
		}
	}
	copy(d[:], h.Sum(nil))
	return d, nil
}

// treeSize estimates the bytes a tree needs on ext4.
func treeSize(dir string) (int64, error) {
	var n int64
	err := filepath.Walk(dir, func(_ string, fi fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		n += roundUp(fi.Size(), 4096) + 4096
		return nil
	})
	return n, err
}

// Corrupt finds the first occurrence of needle in the file at path (a disk
// or partition image) and flips one bit in the middle of it, returning the
// offset of the changed byte. The needle should be unique, e.g. a 4 KiB
// block of KnownBlob.
func Corrupt(path string, needle []byte) (int64, error) {
	if len(needle) == 0 || len(needle) > mib {
		return 0, fmt.Errorf("diskimage: Corrupt: needle of %d bytes (want 1..1 MiB)", len(needle))
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 4*mib+len(needle))
	for base := int64(0); ; base += 4 * mib {
		n, err := f.ReadAt(buf, base)
		if i := bytes.Index(buf[:n], needle); i >= 0 {
			at := base + int64(i+len(needle)/2)
			b := []byte{buf[i+len(needle)/2] ^ 0x01}
			if _, err := f.WriteAt(b, at); err != nil {
				return 0, err
			}
			return at, f.Close()
		}
		if err == io.EOF || n < len(buf) {
			return 0, fmt.Errorf("diskimage: Corrupt: needle not found in %s", path)
		}
		if err != nil {
			return 0, err
		}
	}
}

// hashOwner adds a file's numeric owner and its xattrs (sorted) to h.
func hashOwner(h io.Writer, p string, fi fs.FileInfo) error {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		fmt.Fprintf(h, "%d:%d\x00", st.Uid, st.Gid)
	}
	names, err := listXattrs(p)
	if err != nil {
		return fmt.Errorf("diskimage: %s: %w", p, err)
	}
	sort.Strings(names)
	for _, n := range names {
		v, err := getXattr(p, n)
		if err != nil {
			return fmt.Errorf("diskimage: %s: xattr %s: %w", p, n, err)
		}
		fmt.Fprintf(h, "%s=%x\x00", n, v)
	}
	return nil
}

func listXattrs(p string) ([]string, error) {
	for size := 256; size <= 1<<16; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Llistxattr(p, buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		var names []string
		for _, s := range bytes.Split(buf[:n], []byte{0}) {
			if len(s) > 0 {
				names = append(names, string(s))
			}
		}
		return names, nil
	}
	return nil, unix.ERANGE
}

func getXattr(p, name string) ([]byte, error) {
	for size := 256; size <= 1<<16; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Lgetxattr(p, name, buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
	return nil, unix.ERANGE
}
