// Package boundedfile reads untrusted files and streams (policies,
// signatures, grants, keys, /proc and /sys text, evidence, modules,
// decompressed images) whole, up to the caller's limit. More than the
// limit is an error naming the input and the limit, never a silent
// truncation: a truncated file would otherwise be parsed as if whole.
// Files must be regular: a directory, device or FIFO is never one mcinit
// means to read.
package boundedfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ErrTooLarge matches (errors.Is) every *TooLargeError.
var ErrTooLarge = errors.New("more than the limit")

// TooLargeError says that Name holds more than Limit bytes.
type TooLargeError struct {
	Name  string
	Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s: more than the limit of %d bytes", e.Name, e.Limit)
}

// Is makes errors.Is(err, ErrTooLarge) true.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// Read reads one bounded regular file from fsys; limit is in bytes.
// Errors name the file.
func Read(fsys fs.FS, name string, limit int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readOpen(f, name, limit, false)
}

// ReadPath is Read for a host path (the CLI's arguments, /proc and /sys
// files). A pipe is accepted as well, with the same bound, so a shell's
// process substitution (-golden <(...)) works.
func ReadPath(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // a *PathError names path already
	}
	defer f.Close()
	return readOpen(f, path, limit, true)
}

// ReadAll reads r to its end, at most limit bytes; name labels errors.
func ReadAll(r io.Reader, name string, limit int64) ([]byte, error) {
	if limit < 0 {
		return nil, fmt.Errorf("%s: negative limit %d", name, limit)
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, &TooLargeError{Name: name, Limit: limit}
	}
	return b, nil
}

// Copy copies r to w until r ends, at most limit bytes, and returns how
// many it copied; name labels errors. When r holds more, w has received
// limit bytes and the error is a *TooLargeError.
func Copy(w io.Writer, r io.Reader, name string, limit int64) (int64, error) {
	if limit < 0 {
		return 0, fmt.Errorf("%s: negative limit %d", name, limit)
	}
	n, err := io.Copy(w, io.LimitReader(r, limit))
	if err != nil {
		return n, fmt.Errorf("%s: %w", name, err)
	}
	if n == limit {
		// One more byte tells a stream of exactly limit bytes from a longer one.
		var one [1]byte
		m, err := io.ReadFull(r, one[:])
		if m > 0 {
			return n, &TooLargeError{Name: name, Limit: limit}
		}
		if err != nil && err != io.EOF {
			return n, fmt.Errorf("%s: %w", name, err)
		}
	}
	return n, nil
}

// readOpen reads an open file, which must be regular (or a pipe, when
// pipeOK) and at most limit bytes; errors name it.
func readOpen(f fs.File, name string, limit int64, pipeOK bool) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if !st.Mode().IsRegular() && !(pipeOK && st.Mode()&fs.ModeNamedPipe != 0) {
		return nil, fmt.Errorf("%s: not a regular file", name)
	}
	return ReadAll(f, name, limit)
}
