package devdiff

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// RemoveDeleted applies a deletion manifest to the source tree dir: it
// removes each listed path, recursively. Removal stays beneath dir even
// where the tree holds symlinks (os.Root), paths already gone are skipped,
// and a malformed manifest stops it before the bad entry. It returns how
// many paths it removed.
func RemoveDeleted(dir string, manifest io.Reader) (int, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	n := 0
	err = ReadManifest(manifest, func(p string) error {
		rel := p[1:]
		if _, err := root.Lstat(rel); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err := root.RemoveAll(rel); err != nil {
			return fmt.Errorf("remove %s: %w", p, err)
		}
		n++
		return nil
	})
	return n, err
}

// OpenManifest opens the deletion manifest of an export: the member
// "./.mcinit-deleted" of a tar written by TarWriter, or the file of that
// name in a directory written by DirWriter.
func OpenManifest(export string) (io.ReadCloser, error) {
	st, err := os.Stat(export)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return os.Open(filepath.Join(export, ManifestName))
	}
	f, err := os.Open(export)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			f.Close()
			return nil, fmt.Errorf("%s: no member ./%s: not a devdiff export", export, ManifestName)
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", export, err)
		}
		if h.Name == "./"+ManifestName && h.Typeflag == tar.TypeReg {
			return struct {
				io.Reader
				io.Closer
			}{tr, f}, nil
		}
	}
}
