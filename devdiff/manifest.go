package devdiff

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// ManifestName is the deletion manifest at the root of every export.
//
// It lists the paths to remove from the source tree before the rest of the
// export is copied over it: deleted entries and entries whose file type
// changed. Each entry is "./" followed by the path relative to the image
// root, terminated by a NUL byte, so that in the source tree
//
//	xargs -0 -r rm -rf -- < .mcinit-deleted
//
// applies it. Paths are clean: no "." or ".." elements, no empty elements.
const ManifestName = ".mcinit-deleted"

// MaxManifestPath bounds one manifest entry (PATH_MAX).
const MaxManifestPath = 4096

// manifestEntry renders one image path ("/a/b") as a manifest entry.
func manifestEntry(p string) string { return "." + p + "\x00" }

// ReadManifest parses a deletion manifest and calls fn with each path,
// rooted at the image ("/a/b"). It reads as it goes, so a manifest of any
// length costs one entry of memory.
func ReadManifest(r io.Reader, fn func(path string) error) error {
	br := bufio.NewReaderSize(r, MaxManifestPath+1)
	for n := 1; ; n++ {
		entry, err := br.ReadSlice(0)
		switch {
		case err == io.EOF && len(entry) == 0:
			return nil
		case err == io.EOF:
			return fmt.Errorf("%s entry %d: not NUL-terminated", ManifestName, n)
		case errors.Is(err, bufio.ErrBufferFull):
			return fmt.Errorf("%s entry %d: longer than %d bytes", ManifestName, n, MaxManifestPath)
		case err != nil:
			return fmt.Errorf("%s: %w", ManifestName, err)
		}
		p, err := parseManifestEntry(string(entry[:len(entry)-1]))
		if err != nil {
			return fmt.Errorf("%s entry %d: %w", ManifestName, n, err)
		}
		if err := fn(p); err != nil {
			return err
		}
	}
}

func parseManifestEntry(e string) (string, error) {
	rel, ok := strings.CutPrefix(e, "./")
	if !ok {
		return "", fmt.Errorf("%q does not start with \"./\"", e)
	}
	if rel == "" {
		return "", errors.New("empty path (the root cannot be deleted)")
	}
	for _, el := range strings.Split(rel, "/") {
		switch el {
		case "", ".", "..":
			return "", fmt.Errorf("%q: element %q not allowed", e, el)
		}
	}
	p := "/" + rel
	if path.Clean(p) != p {
		return "", fmt.Errorf("%q is not a clean path", e)
	}
	return p, nil
}
