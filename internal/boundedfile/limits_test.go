package boundedfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"testing/iotest"
)

const limit = 16

func TestAtAndOverLimit(t *testing.T) {
	dir := t.TempDir()
	fsys := fstest.MapFS{}
	for _, n := range []int{0, 1, limit - 1, limit, limit + 1, 10 * limit} {
		data := bytes.Repeat([]byte{'x'}, n)
		name := "f" + strings.Repeat("x", n%7)
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		fsys[name] = &fstest.MapFile{Data: data}
		for _, tc := range []struct {
			how  string
			name string
			read func() ([]byte, error)
		}{
			{"ReadPath", path, func() ([]byte, error) { return ReadPath(path, limit) }},
			{"Read", name, func() ([]byte, error) { return Read(fsys, name, limit) }},
			{"ReadAll", "stream", func() ([]byte, error) { return ReadAll(bytes.NewReader(data), "stream", limit) }},
			{"Copy", "stream", func() ([]byte, error) {
				var buf bytes.Buffer
				c, err := Copy(&buf, bytes.NewReader(data), "stream", limit)
				if c != int64(buf.Len()) {
					t.Errorf("Copy returned %d, wrote %d", c, buf.Len())
				}
				return buf.Bytes(), err
			}},
		} {
			got, err := tc.read()
			if n <= limit {
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("%s of %d bytes (limit %d): %d bytes, %v", tc.how, n, limit, len(got), err)
				}
				continue
			}
			var tl *TooLargeError
			if !errors.As(err, &tl) || tl.Name != tc.name || tl.Limit != limit || !errors.Is(err, ErrTooLarge) {
				t.Errorf("%s of %d bytes (limit %d): %v, want a TooLargeError naming %s", tc.how, n, limit, err, tc.name)
				continue
			}
			if want := tc.name + ": more than the limit of 16 bytes"; err.Error() != want {
				t.Errorf("%s: error %q, want %q", tc.how, err, want)
			}
			if tc.how != "Copy" && got != nil {
				t.Errorf("%s returned %d bytes with the error", tc.how, len(got))
			}
		}
	}
}

func TestZeroLimit(t *testing.T) {
	if b, err := ReadAll(strings.NewReader(""), "empty", 0); err != nil || len(b) != 0 {
		t.Errorf("empty at limit 0: %q %v", b, err)
	}
	if _, err := ReadAll(strings.NewReader("x"), "one", 0); !errors.Is(err, ErrTooLarge) {
		t.Errorf("one byte at limit 0: %v", err)
	}
	if _, err := ReadAll(strings.NewReader(""), "neg", -1); err == nil {
		t.Error("negative limit accepted")
	}
}

func TestNotRegular(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadPath(dir, limit); err == nil || err.Error() != dir+": not a regular file" {
		t.Errorf("ReadPath of a directory: %v", err)
	}
	fsys := fstest.MapFS{"d/f": &fstest.MapFile{}}
	if _, err := Read(fsys, "d", limit); err == nil || err.Error() != "d: not a regular file" {
		t.Errorf("Read of a directory: %v", err)
	}
	if _, err := ReadPath("/dev/zero", limit); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("ReadPath of /dev/zero: %v", err)
	}
}

func TestMissing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope")
	if _, err := ReadPath(p, limit); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), p) {
		t.Errorf("ReadPath of a missing file: %v", err)
	}
	if _, err := Read(fstest.MapFS{}, "nope", limit); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("Read of a missing file: %v", err)
	}
}

// TestReadError: an I/O error is wrapped with the name, not taken for an
// end of file.
func TestReadError(t *testing.T) {
	r := iotest.DataErrReader(iotest.ErrReader(syscall.EIO))
	if _, err := ReadAll(r, "disk", limit); !errors.Is(err, syscall.EIO) || !strings.HasPrefix(err.Error(), "disk: ") {
		t.Errorf("Read with EIO: %v", err)
	}
	if _, err := Copy(&bytes.Buffer{}, iotest.ErrReader(syscall.EIO), "disk", limit); !errors.Is(err, syscall.EIO) {
		t.Errorf("Copy with EIO: %v", err)
	}
	// At exactly the limit, an error on the probe byte is an error too.
	r = iotest.DataErrReader(&errAfter{data: bytes.Repeat([]byte{'x'}, limit)})
	if _, err := Copy(&bytes.Buffer{}, r, "disk", limit); !errors.Is(err, syscall.EIO) {
		t.Errorf("Copy with EIO after limit bytes: %v", err)
	}
}

// errAfter yields data, then EIO.
type errAfter struct{ data []byte }

func (e *errAfter) Read(p []byte) (int, error) {
	if len(e.data) == 0 {
		return 0, syscall.EIO
	}
	n := copy(p, e.data)
	e.data = e.data[n:]
	return n, nil
}
