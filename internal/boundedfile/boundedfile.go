// Package boundedfile reads small untrusted files (policies, signatures,
// grants, keys, /proc text) whole, refusing anything that is not a regular
// file or is larger than the caller's limit.
package boundedfile

import (
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Read reads one bounded regular file from fsys; limit is in bytes.
func Read(fsys fs.FS, name string, limit int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readOpen(f, name, limit)
}

// ReadPath is Read for a host path (the CLI's arguments, /proc files).
func ReadPath(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readOpen(f, path, limit)
}

// readOpen reads an open file, which must be regular and at most limit
// bytes; errors name it.
func readOpen(f fs.File, name string, limit int64) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", name)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: more than the limit of %d bytes", name, limit)
	}
	return data, nil
}
