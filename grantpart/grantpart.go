// Package grantpart is the container that carries signed development
// grants on a device's disk, in a small GPT partition named mcinit-grants.
// /init reads it raw: no filesystem driver parses these bytes and no
// kernel module is needed for them, and the parser below is the only
// code that sees them before the signature check. Everything in it is
// untrusted; it only ever adds grants, and each one is verified exactly
// like a grant shipped in the initramfs.
//
// Layout (integers little-endian):
//
//	0   magic "MCGRANTS"
//	8   u16 version (1)
//	10  u16 entry count
//	12  u32 length of the entries that follow
//	16  entries: u8 name length, u16 grant length, u16 signature
//	    length, then the name, the grant document and its signature file
//	    (entries sorted by name, each name once)
//	..  SHA-256 of everything before it (a torn or partial write reads
//	    as damaged, never as a shorter list)
//
// The rest of the partition is ignored; the writer fills it with zeros,
// so a container is a function of its grants (sorted by name).
package grantpart

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/mcinit/mcinit/signing"
)

// Label is the GPT partition name /init looks for.
const Label = "mcinit-grants"

// TypeUUID is the GPT partition type `mcinit image -grants` gives the
// partition. /init selects by Label only; the type tells other tools
// what the partition is.
const TypeUUID = "9d3c5a6e-2f1b-4c8e-a7d0-6b1e4f0c2a91"

// Limits on an untrusted container.
const (
	// MaxSize bounds the container, and so what /init reads from disk.
	MaxSize = 1 << 20
	// MaxEntries matches the number of grants read from the initramfs.
	MaxEntries = 64
	// MaxName bounds an entry's name.
	MaxName = 64
	// MaxGrant and MaxSig bound the grant document and its signature
	// file (the limits of policy.MaxGrantSize and signing.MaxSignatureFile).
	MaxGrant = 4 << 10
	MaxSig   = signing.MaxSignatureFile
	// DefaultPartSize is the partition size `mcinit image -grants` makes.
	DefaultPartSize = MaxSize
)

const (
	magic     = "MCGRANTS"
	version   = 1
	headerLen = 16
	entryHdr  = 5
	sumLen    = sha256.Size
)

// Entry is one grant and its detached signature file, under a name (the
// grant's file name when it was written).
type Entry struct {
	Name  string
	Grant []byte
	Sig   []byte
}

// ErrBlank is returned for a partition that holds no container at all
// (its first bytes are zero): a fresh, empty grants partition.
var ErrBlank = errors.New("blank (no grants written)")

// Parse reads a container from the start of data (the partition's first
// bytes; anything after the container is ignored). It checks every
// bound and the checksum; it does not check signatures.
func Parse(data []byte) ([]Entry, error) {
	if len(data) < headerLen {
		if allZero(data) {
			return nil, ErrBlank
		}
		return nil, fmt.Errorf("%d bytes: too short for a grants container", len(data))
	}
	if string(data[:8]) != magic {
		if allZero(data[:headerLen]) {
			return nil, ErrBlank
		}
		return nil, fmt.Errorf("not a grants container (magic %q)", printable(data[:8]))
	}
	if v := binary.LittleEndian.Uint16(data[8:]); v != version {
		return nil, fmt.Errorf("container version %d is not supported (want %d)", v, version)
	}
	count := int(binary.LittleEndian.Uint16(data[10:]))
	bodyLen := int64(binary.LittleEndian.Uint32(data[12:]))
	if count > MaxEntries {
		return nil, fmt.Errorf("%d entries, more than the limit of %d", count, MaxEntries)
	}
	end := headerLen + bodyLen + sumLen
	if end > MaxSize {
		return nil, fmt.Errorf("container of %d bytes, more than the limit of %d", end, MaxSize)
	}
	if end > int64(len(data)) {
		return nil, fmt.Errorf("container of %d bytes, only %d present", end, len(data))
	}
	sum := sha256.Sum256(data[:headerLen+bodyLen])
	if !bytes.Equal(sum[:], data[headerLen+bodyLen:end]) {
		return nil, errors.New("checksum mismatch: damaged or partly written")
	}
	body := data[headerLen : headerLen+bodyLen]
	entries := make([]Entry, 0, count)
	for i := 0; i < count; i++ {
		if len(body) < entryHdr {
			return nil, fmt.Errorf("entry %d: truncated header", i+1)
		}
		nl := int(body[0])
		gl := int(binary.LittleEndian.Uint16(body[1:]))
		sl := int(binary.LittleEndian.Uint16(body[3:]))
		body = body[entryHdr:]
		if len(body) < nl+gl+sl {
			return nil, fmt.Errorf("entry %d: %d bytes announced, %d left", i+1, nl+gl+sl, len(body))
		}
		e := Entry{
			Name:  string(body[:nl]),
			Grant: body[nl : nl+gl],
			Sig:   body[nl+gl : nl+gl+sl],
		}
		body = body[nl+gl+sl:]
		if err := checkEntry(e); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i+1, err)
		}
		// One order, so one spelling per set of grants; this also
		// rules out a name given twice.
		if i > 0 && e.Name <= entries[i-1].Name {
			return nil, fmt.Errorf("entry %d: name %q does not sort after %q", i+1, e.Name, entries[i-1].Name)
		}
		entries = append(entries, e)
	}
	if len(body) != 0 {
		return nil, fmt.Errorf("%d bytes after the last entry", len(body))
	}
	return entries, nil
}

// Build makes the container for entries, sorted by name so the bytes do
// not depend on the order they were given in.
func Build(entries []Entry) ([]byte, error) {
	if len(entries) > MaxEntries {
		return nil, fmt.Errorf("grantpart: %d grants, more than the limit of %d", len(entries), MaxEntries)
	}
	es := append([]Entry(nil), entries...)
	sort.Slice(es, func(i, j int) bool { return es[i].Name < es[j].Name })
	var body bytes.Buffer
	for i, e := range es {
		if err := checkEntry(e); err != nil {
			return nil, fmt.Errorf("grantpart: %q: %w", e.Name, err)
		}
		if i > 0 && es[i-1].Name == e.Name {
			return nil, fmt.Errorf("grantpart: name %q given twice", e.Name)
		}
		var h [entryHdr]byte
		h[0] = byte(len(e.Name))
		binary.LittleEndian.PutUint16(h[1:], uint16(len(e.Grant)))
		binary.LittleEndian.PutUint16(h[3:], uint16(len(e.Sig)))
		body.Write(h[:])
		body.WriteString(e.Name)
		body.Write(e.Grant)
		body.Write(e.Sig)
	}
	out := make([]byte, headerLen, headerLen+body.Len()+sumLen)
	copy(out, magic)
	binary.LittleEndian.PutUint16(out[8:], version)
	binary.LittleEndian.PutUint16(out[10:], uint16(len(es)))
	binary.LittleEndian.PutUint32(out[12:], uint32(body.Len()))
	out = append(out, body.Bytes()...)
	sum := sha256.Sum256(out)
	out = append(out, sum[:]...)
	if len(out) > MaxSize {
		return nil, fmt.Errorf("grantpart: container of %d bytes, more than the limit of %d", len(out), MaxSize)
	}
	return out, nil
}

func checkEntry(e Entry) error {
	if err := ValidName(e.Name); err != nil {
		return err
	}
	switch {
	case len(e.Grant) == 0:
		return errors.New("empty grant")
	case len(e.Grant) > MaxGrant:
		return fmt.Errorf("grant of %d bytes, more than the limit of %d", len(e.Grant), MaxGrant)
	case len(e.Sig) == 0:
		return errors.New("empty signature")
	case len(e.Sig) > MaxSig:
		return fmt.Errorf("signature of %d bytes, more than the limit of %d", len(e.Sig), MaxSig)
	}
	return nil
}

// ValidName accepts 1-64 of A-Z a-z 0-9 . _ - not starting with a dot:
// a name is printed on the console, so it must be plain.
func ValidName(n string) error {
	if n == "" || len(n) > MaxName || n[0] == '.' {
		return fmt.Errorf("name %q is not 1-%d characters of A-Z a-z 0-9 . _ - (not starting with .)", printable([]byte(n)), MaxName)
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("name %q is not 1-%d characters of A-Z a-z 0-9 . _ - (not starting with .)", printable([]byte(n)), MaxName)
		}
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// printable bounds and escapes untrusted bytes for an error message.
func printable(b []byte) string {
	if len(b) > MaxName {
		b = b[:MaxName]
	}
	var s []byte
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		s = append(s, c)
	}
	return string(s)
}
