package boundedfile

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

func TestRead(t *testing.T) {
	fsys := fstest.MapFS{
		"ok":  {Data: []byte("1234")},
		"dir": {Mode: os.ModeDir},
	}
	if b, err := Read(fsys, "ok", 4); err != nil || string(b) != "1234" {
		t.Errorf("at the limit: %q, %v", b, err)
	}
	if _, err := Read(fsys, "ok", 3); err == nil || !strings.Contains(err.Error(), "ok: more than the limit of 3 bytes") {
		t.Errorf("over the limit: %v", err)
	}
	if _, err := Read(fsys, "dir", 3); err == nil || !strings.Contains(err.Error(), "dir: not a regular file") {
		t.Errorf("directory: %v", err)
	}
	if _, err := Read(fsys, "missing", 3); !os.IsNotExist(err) {
		t.Errorf("missing: %v", err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("12345"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPath(p, 4); err == nil || !strings.Contains(err.Error(), p+": more than the limit") {
		t.Errorf("ReadPath over the limit: %v", err)
	}
	if _, err := ReadPath(dir, 4); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("ReadPath directory: %v", err)
	}
}

// A pipe (what the shell's <(...) passes) reads with the same bound.
func TestReadPathPipe(t *testing.T) {
	for _, tc := range []struct {
		data string
		err  bool
	}{{"1234", false}, {"12345", true}} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.WriteString(tc.data); err != nil {
			t.Fatal(err)
		}
		w.Close()
		path := "/proc/self/fd/" + strconv.Itoa(int(r.Fd()))
		b, err := ReadPath(path, 4)
		r.Close()
		switch {
		case tc.err && !errors.Is(err, ErrTooLarge):
			t.Errorf("%q: err %v, want ErrTooLarge", tc.data, err)
		case !tc.err && (err != nil || string(b) != tc.data):
			t.Errorf("%q: got %q, %v", tc.data, b, err)
		}
	}
}
