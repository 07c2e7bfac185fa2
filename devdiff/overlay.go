package devdiff

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

// Overlayfs keeps its bookkeeping in xattrs under one of two prefixes:
// "trusted.overlay." (the default) or "user.overlay." (mounted with
// userxattr). Both are recognised, and neither is ever reported or exported
// as a change of the file's own xattrs.
var overlayPrefixes = [...]string{"trusted.overlay.", "user.overlay."}

// Bounds on what the kernel can hand back; anything beyond is refused.
const (
	maxXattrList  = 64 << 10 // XATTR_LIST_MAX
	maxXattrValue = 64 << 10 // XATTR_SIZE_MAX
	maxXattrCount = 4096
)

// Xattr is one extended attribute of a file.
type Xattr struct {
	Name  string `json:"name"`
	Value []byte `json:"value"`
}

// overlayAttr returns the overlay-private attribute name (e.g. "opaque")
// when name is one of overlayfs's own xattrs.
func overlayAttr(name string) (string, bool) {
	for _, p := range overlayPrefixes {
		if strings.HasPrefix(name, p) {
			return name[len(p):], true
		}
	}
	return "", false
}

// role is what an upper-layer entry means to overlayfs.
type role int

const (
	rolePlain     role = iota // an ordinary file, directory, link, node
	roleWhiteout              // hides the lower entry of the same name
	roleOpaqueDir             // a directory hiding all lower content below it
)

// errRedirect and errMetacopy mark upper layers whose meaning devdiff
// does not reconstruct: a redirected directory takes its lower content
// from another path, and a metacopy file keeps its data in the lower.
var (
	errRedirect = errors.New("redirected directory (overlay redirect_dir): mount the overlay with redirect_dir=off")
	errMetacopy = errors.New("metadata-only copy-up (overlay metacopy): mount the overlay with metacopy=off")
)

// classify decides the overlay role of an upper entry from its file type,
// device number, size and xattrs. Whiteouts come in two forms: a character
// device 0/0, or (kernel 6.7+) a zero-size regular file carrying the
// overlay "whiteout" xattr. A directory is opaque when its overlay
// "opaque" xattr is "y" ("x" only says the directory holds xattr
// whiteouts). Redirects and metacopies are refused rather than misread.
func classify(mode fs.FileMode, rdev uint64, size int64, xattrs []Xattr) (role, error) {
	if mode&fs.ModeCharDevice != 0 && mode&fs.ModeDevice != 0 && rdev == 0 {
		return roleWhiteout, nil
	}
	r := rolePlain
	for _, x := range xattrs {
		name, ok := overlayAttr(x.Name)
		if !ok {
			continue
		}
		switch name {
		case "redirect":
			return rolePlain, fmt.Errorf("%s: %w", x.Name, errRedirect)
		case "metacopy":
			return rolePlain, fmt.Errorf("%s: %w", x.Name, errMetacopy)
		case "whiteout":
			if mode.IsRegular() {
				if size != 0 {
					return rolePlain, fmt.Errorf("%s on a file of %d bytes: an xattr whiteout must be empty", x.Name, size)
				}
				r = roleWhiteout
			}
		case "opaque":
			if mode.IsDir() && string(x.Value) == "y" {
				r = roleOpaqueDir
			}
		}
	}
	return r, nil
}

// ownXattrs drops overlayfs's bookkeeping and sorts the rest by name, so
// two lists compare with a single pass.
func ownXattrs(xs []Xattr) []Xattr {
	if len(xs) == 0 {
		return xs // most entries: no sort.Slice (it reflects even on nothing)
	}
	out := xs[:0]
	for _, x := range xs {
		if _, ok := overlayAttr(x.Name); !ok {
			out = append(out, x)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// parseXattrNames splits the NUL-terminated name list that listxattr(2)
// returns. Empty names and an unterminated tail are errors.
func parseXattrNames(buf []byte) ([]string, error) {
	if len(buf) > maxXattrList {
		return nil, fmt.Errorf("xattr name list of %d bytes exceeds %d", len(buf), maxXattrList)
	}
	var names []string
	for len(buf) > 0 {
		i := bytes.IndexByte(buf, 0)
		if i < 0 {
			return nil, errors.New("xattr name list: last name is not NUL-terminated")
		}
		if i == 0 {
			return nil, errors.New("xattr name list: empty name")
		}
		if len(names) == maxXattrCount {
			return nil, fmt.Errorf("more than %d xattrs", maxXattrCount)
		}
		names = append(names, string(buf[:i]))
		buf = buf[i+1:]
	}
	return names, nil
}

func equalXattrs(a, b []Xattr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || string(a[i].Value) != string(b[i].Value) {
			return false
		}
	}
	return true
}
