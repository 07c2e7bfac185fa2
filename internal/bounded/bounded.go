// Package bounded reads files and streams whose size mcinit does not
// trust, up to a limit. More than the limit is an error naming the input
// and the limit, never a silent truncation: a truncated policy, log or
// module would otherwise be parsed as if it were whole.
package bounded

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

// Read reads r to its end, at most limit bytes; name labels errors.
func Read(r io.Reader, name string, limit int64) ([]byte, error) {
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

// ReadFile reads the regular file at path, at most limit bytes. Errors
// name path.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // *PathError names path already
	}
	defer f.Close()
	return readOpen(f, path, limit)
}

// ReadFS reads the regular file name from fsys, at most limit bytes.
// Errors name the file.
func ReadFS(fsys fs.FS, name string, limit int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readOpen(f, name, limit)
}

// readOpen refuses anything but a regular file: a directory, a device
// or a FIFO is never a file mcinit means to read.
func readOpen(f fs.File, name string, limit int64) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", name)
	}
	return Read(f, name, limit)
}
