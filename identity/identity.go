// Package identity reads a board's identity from the device tree (ARM) or
// DMI/SMBIOS (x86). All values are untrusted firmware input.
package identity

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/mcinit/mcinit/internal/boundedfile"
)

// Source says where an identity came from.
type Source string

const (
	SourceDT  Source = "dt"
	SourceDMI Source = "dmi"
)

// Bounds applied to every value taken from firmware.
const (
	// MaxField is the longest value kept, in bytes. A longer value keeps
	// its head and ends in "~" and the SHA-256 of the whole value, so two
	// values that differ only in their tails never look the same.
	MaxField = 256
	// MaxCompatible is the number of root compatible entries kept.
	MaxCompatible = 16
)

// Identity is what the hardware says it is. Values are bounded and free of
// control characters once constructed by this package.
type Identity struct {
	Source Source
	Arch   string // GOARCH-style: "amd64", "arm64"

	// Device tree.
	Compatible []string // root compatible, most specific first
	Model      string

	// DMI/SMBIOS.
	SysVendor, ProductName, ProductVersion, ProductFamily, ProductSKU string
	BoardVendor, BoardName, BoardVersion                              string
	SystemUUID                                                        string

	// Serial is the DT serial-number or the DMI system serial.
	Serial string
}

// String is the canonical one-line text form used in logs, grants and
// measurements. It is frozen (documented in docs/boards.md): the fields of
// the identity's source, always all of them and always in this order, as
// key=value separated by one space; values are double-quoted with `\` and
// `"` escaped; compatible is a bracketed, comma-separated list of quoted
// strings. Because values are sanitized (printable ASCII only), the form
// never contains a newline.
func (id Identity) String() string {
	return id.format(true)
}

// Class is String without the per-device values (serial and system UUID):
// it names the kind of machine, so the set of values it can take for a
// fleet is small and enumerable (useful in measurements).
func (id Identity) Class() string {
	return id.format(false)
}

func (id Identity) format(perDevice bool) string {
	var b strings.Builder
	kv := func(k, v string) {
		b.WriteByte(' ')
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(quote(v))
	}
	b.WriteString("source=")
	b.WriteString(string(id.Source))
	b.WriteString(" arch=")
	b.WriteString(id.Arch)
	switch id.Source {
	case SourceDT:
		b.WriteString(" compatible=[")
		for i, c := range id.Compatible {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(quote(c))
		}
		b.WriteByte(']')
		kv("model", id.Model)
		if perDevice {
			kv("serial", id.Serial)
		}
	default:
		kv("sys_vendor", id.SysVendor)
		kv("product_name", id.ProductName)
		kv("product_version", id.ProductVersion)
		kv("product_family", id.ProductFamily)
		kv("product_sku", id.ProductSKU)
		kv("board_vendor", id.BoardVendor)
		kv("board_name", id.BoardName)
		kv("board_version", id.BoardVersion)
		if perDevice {
			kv("serial", id.Serial)
			kv("uuid", id.SystemUUID)
		}
	}
	return b.String()
}

func quote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	return `"` + s + `"`
}

// placeholderSerials are values firmware puts in the serial field when
// nobody set it; they identify nothing.
var placeholderSerials = map[string]bool{
	"": true, "0": true, "none": true, "not specified": true, "not applicable": true,
	"to be filled by o.e.m.": true, "default string": true, "system serial number": true,
	"0123456789": true, "123456789": true, "n/a": true,
}

// DeviceID names this one device: the serial number, else the DMI system
// UUID, else "" (no usable per-device identity). Known placeholder serials
// ("To Be Filled By O.E.M." and the like) do not count.
func (id Identity) DeviceID() string {
	if !placeholderSerials[strings.ToLower(id.Serial)] {
		return id.Serial
	}
	return id.SystemUUID
}

// clean makes an untrusted firmware value safe: trailing NUL padding goes,
// every byte outside printable ASCII becomes '?', surrounding spaces are
// trimmed, and a value over MaxField bytes becomes its head, "~" and the
// hex SHA-256 of the whole (padding-free) value, at most MaxField bytes.
func clean(s string) string {
	s = strings.TrimRight(s, "\x00")
	if len(s) > MaxField {
		sum := sha256.Sum256([]byte(s))
		return sanitize(s[:MaxField-1-2*sha256.Size]) + "~" + hex.EncodeToString(sum[:])
	}
	return sanitize(s)
}

// sanitize replaces bytes outside printable ASCII with '?' and trims spaces.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return strings.TrimSpace(string(b))
}

// Read identifies the running machine. sysRoot is the directory holding
// sys/ ("/" in /init). It tries, in order, the flattened device tree
// (sys/firmware/fdt), the raw SMBIOS tables (sys/firmware/dmi/tables) and
// the kernel's DMI attributes (sys/class/dmi/id). Arch is the running
// architecture.
func Read(sysRoot string) (Identity, error) {
	var errs []error
	try := func(what string, f func() (Identity, error)) (Identity, bool) {
		id, err := f()
		if err == nil {
			id.Arch = runtime.GOARCH
			return id, true
		}
		if !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
		return Identity{}, false
	}
	fdtPath := filepath.Join(sysRoot, "sys/firmware/fdt")
	if id, ok := try(fdtPath, func() (Identity, error) {
		b, err := boundedfile.ReadPath(fdtPath, MaxDTBSize)
		if err != nil {
			return Identity{}, err
		}
		return FromDTB(b)
	}); ok {
		return id, nil
	}
	tables := filepath.Join(sysRoot, "sys/firmware/dmi/tables")
	if id, ok := try(tables, func() (Identity, error) {
		ep, err := boundedfile.ReadPath(filepath.Join(tables, "smbios_entry_point"), 64)
		if err != nil {
			return Identity{}, err
		}
		t, err := boundedfile.ReadPath(filepath.Join(tables, "DMI"), MaxSMBIOSSize)
		if err != nil {
			return Identity{}, err
		}
		return FromSMBIOS(ep, t)
	}); ok {
		return id, nil
	}
	dmiDir := filepath.Join(sysRoot, "sys/class/dmi/id")
	if id, ok := try(dmiDir, func() (Identity, error) { return FromDMIDir(dmiDir) }); ok {
		return id, nil
	}
	if len(errs) == 0 {
		return Identity{}, fmt.Errorf("no device tree or DMI data under %s", sysRoot)
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return Identity{}, fmt.Errorf("identify: %s", strings.Join(msgs, "; "))
}
