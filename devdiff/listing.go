package devdiff

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Lister writes a human-readable or JSON-lines listing of changes.
//
// Text: one line per change, "K PATH", where K is A, M, D or m (see Kind)
// or O for an opaque directory (such a directory may get a second line for
// its own metadata). PATH starts with "/"; a path holding control
// characters, invalid UTF-8 or a backslash is written as a Go-quoted string
// starting with '"' instead.
//
// JSON: one object per line (see Record), the same lines in the same order.
type Lister struct {
	w    io.Writer
	json *json.Encoder
}

// NewLister returns a Lister writing text, or JSON lines when asJSON.
func NewLister(w io.Writer, asJSON bool) *Lister {
	l := &Lister{w: w}
	if asJSON {
		l.json = json.NewEncoder(w)
	}
	return l
}

// Record is one JSON listing line.
type Record struct {
	Change    string    `json:"change"` // "A", "M", "D", "m" or "O"
	Path      string    `json:"path"`
	Type      FileType  `json:"type"` // in the upper; for "D" in the lower
	LowerType FileType  `json:"lower_type,omitempty"`
	Why       []string  `json:"why,omitempty"`
	Mode      string    `json:"mode"` // octal, with setuid/setgid/sticky bits
	UID       uint32    `json:"uid"`
	GID       uint32    `json:"gid"`
	Size      int64     `json:"size"`
	MTime     time.Time `json:"mtime"`
	Target    string    `json:"target,omitempty"`
	Device    string    `json:"device,omitempty"` // "major:minor"
	LinkTo    string    `json:"link_to,omitempty"`
	Xattrs    []Xattr   `json:"xattrs,omitempty"` // values base64
}

// Add writes the lines for c; Unchanged entries that are not opaque
// directories write nothing.
func (l *Lister) Add(c *Change) error {
	if c.Opaque {
		if err := l.line('O', c); err != nil {
			return err
		}
	}
	if c.Kind == Unchanged {
		return nil
	}
	return l.line(byte(c.Kind), c)
}

func (l *Lister) line(k byte, c *Change) error {
	if l.json == nil {
		_, err := fmt.Fprintf(l.w, "%c %s\n", k, quotePath(c.Path))
		return err
	}
	r := Record{
		Change: string(k), Path: c.Path, Type: c.Info.Type, Why: c.Why,
		Mode: fmt.Sprintf("%04o", c.Info.Perm), UID: c.Info.UID, GID: c.Info.GID,
		Size: c.Info.Size, MTime: c.Info.ModTime.UTC(), Target: c.Info.Target,
		LinkTo: c.LinkTo, Xattrs: c.Info.Xattrs,
	}
	if k == 'O' {
		r.Why = nil
	}
	if c.Lower != nil && c.Lower.Type != c.Info.Type {
		r.LowerType = c.Lower.Type
	}
	if c.Info.Type == TypeChar || c.Info.Type == TypeBlock {
		r.Device = fmt.Sprintf("%d:%d", unix.Major(c.Info.Rdev), unix.Minor(c.Info.Rdev))
	}
	return l.json.Encode(&r)
}

// quotePath leaves ordinary paths alone and Go-quotes the rest, so every
// listing line stays one line.
func quotePath(p string) string {
	if !utf8.ValidString(p) {
		return strconv.Quote(p)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f || r == '\\' || r == utf8.RuneError {
			return strconv.Quote(p)
		}
	}
	return p
}
