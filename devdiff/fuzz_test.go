package devdiff

import (
	"bytes"
	"io/fs"
	"path"
	"strings"
	"testing"
)

func TestReadManifest(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{in: "", want: nil},
		{in: "./a\x00./b c/d\n\x00", want: []string{"/a", "/b c/d\n"}},
		{in: "./a", err: "not NUL-terminated"},
		{in: "a\x00", err: `does not start with "./"`},
		{in: "./\x00", err: "the root cannot be deleted"},
		{in: "./a/../b\x00", err: `element ".."`},
		{in: "./a//b\x00", err: `element ""`},
		{in: "./a/\x00", err: `element ""`},
		{in: "./" + strings.Repeat("x", MaxManifestPath) + "\x00", err: "longer than"},
	} {
		var got []string
		err := ReadManifest(strings.NewReader(tc.in), func(p string) error { got = append(got, p); return nil })
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ReadManifest(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("ReadManifest(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestQuotePath(t *testing.T) {
	for in, want := range map[string]string{
		"/etc/a b":   "/etc/a b",
		"/über":      "/über",
		"/a\nb":      `"/a\nb"`,
		"/a\\b":      `"/a\\b"`,
		"/\xff":      `"/\xff"`,
		"/a\x7f":     `"/a\x7f"`,
		"/tab\there": `"/tab\there"`,
	} {
		if got := quotePath(in); got != want {
			t.Errorf("quotePath(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestClassify(t *testing.T) {
	x := func(name, v string) []Xattr { return []Xattr{{Name: name, Value: []byte(v)}} }
	dev := fs.ModeDevice | fs.ModeCharDevice
	for _, tc := range []struct {
		mode fs.FileMode
		rdev uint64
		size int64
		xs   []Xattr
		want role
		err  string
	}{
		{mode: dev, rdev: 0, want: roleWhiteout},
		{mode: dev, rdev: 259, want: rolePlain},
		{mode: fs.ModeDevice, rdev: 0, want: rolePlain}, // block 0/0 is no whiteout
		{mode: 0o644, xs: x("trusted.overlay.whiteout", ""), want: roleWhiteout},
		{mode: 0o644, xs: x("user.overlay.whiteout", ""), want: roleWhiteout},
		{mode: 0o644, size: 3, xs: x("trusted.overlay.whiteout", ""), err: "must be empty"},
		{mode: fs.ModeDir, xs: x("trusted.overlay.opaque", "y"), want: roleOpaqueDir},
		{mode: fs.ModeDir, xs: x("user.overlay.opaque", "y"), want: roleOpaqueDir},
		{mode: fs.ModeDir, xs: x("trusted.overlay.opaque", "x"), want: rolePlain},
		{mode: fs.ModeDir, xs: x("security.overlay.opaque", "y"), want: rolePlain},
		{mode: fs.ModeDir, xs: x("trusted.overlay.redirect", "/old"), err: "redirect_dir=off"},
		{mode: 0o644, xs: x("trusted.overlay.metacopy", ""), err: "metacopy=off"},
	} {
		got, err := classify(tc.mode, tc.rdev, tc.size, tc.xs)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("classify(%v, %v) error = %v, want %q", tc.mode, tc.xs, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("classify(%v, %d, %v) = %v, %v; want %v", tc.mode, tc.rdev, tc.xs, got, err, tc.want)
		}
	}
}

// FuzzReadManifest: any input parses or fails cleanly; what parses is a
// clean rooted path that re-encodes to the same bytes.
func FuzzReadManifest(f *testing.F) {
	f.Add([]byte("./a\x00./b/c\x00"))
	f.Add([]byte("./a/../b\x00"))
	f.Add([]byte("./a"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var re bytes.Buffer
		err := ReadManifest(bytes.NewReader(data), func(p string) error {
			if !strings.HasPrefix(p, "/") || p == "/" || path.Clean(p) != p || strings.Contains(p, "\x00") {
				t.Fatalf("unsafe path %q accepted", p)
			}
			re.WriteString(manifestEntry(p))
			return nil
		})
		if err == nil && !bytes.Equal(re.Bytes(), data) {
			t.Fatalf("manifest %q re-encodes to %q", data, re.Bytes())
		}
	})
}

// FuzzOverlayXattrs feeds a listxattr name buffer and a value to the
// parser and the classifier.
func FuzzOverlayXattrs(f *testing.F) {
	f.Add([]byte("trusted.overlay.opaque\x00user.x\x00"), []byte("y"), uint32(fs.ModeDir), uint64(0), int64(0))
	f.Add([]byte("user.overlay.whiteout\x00"), []byte(""), uint32(0o644), uint64(0), int64(0))
	f.Add([]byte("trusted.overlay.redirect\x00"), []byte("/a"), uint32(fs.ModeDir), uint64(0), int64(0))
	f.Add([]byte("a\x00\x00"), []byte(""), uint32(fs.ModeDevice|fs.ModeCharDevice), uint64(0), int64(0))
	f.Fuzz(func(t *testing.T, names, value []byte, mode uint32, rdev uint64, size int64) {
		list, err := parseXattrNames(names)
		if err != nil {
			return
		}
		xs := make([]Xattr, len(list))
		for i, n := range list {
			if n == "" || strings.Contains(n, "\x00") {
				t.Fatalf("bad name %q from %q", n, names)
			}
			xs[i] = Xattr{Name: n, Value: value}
		}
		m := fs.FileMode(mode)
		r, err := classify(m, rdev, size, xs)
		if err != nil {
			return
		}
		switch r {
		case roleWhiteout:
			if !(m&fs.ModeCharDevice != 0 && rdev == 0) && !(m.IsRegular() && size == 0) {
				t.Fatalf("whiteout for mode %v rdev %d size %d", m, rdev, size)
			}
		case roleOpaqueDir:
			if !m.IsDir() {
				t.Fatalf("opaque non-directory %v", m)
			}
		}
		for _, x := range ownXattrs(xs) {
			if _, ok := overlayAttr(x.Name); ok {
				t.Fatalf("overlay xattr %q kept", x.Name)
			}
		}
	})
}
