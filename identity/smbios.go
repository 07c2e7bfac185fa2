package identity

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/u-root/u-root/pkg/smbios"

	"github.com/mcinit/mcinit/internal/boundedfile"
)

// MaxSMBIOSSize bounds the SMBIOS structure table (real ones are a few KiB).
const MaxSMBIOSSize = 4 << 20

// FromSMBIOS identifies a machine from the raw SMBIOS entry point and
// structure table (the two files under /sys/firmware/dmi/tables): system
// (type 1) and baseboard (type 2) vendor, product, version, family, SKU,
// serial and the system UUID. Arch is "amd64"; Read overrides it with the
// running architecture.
func FromSMBIOS(entryPoint, table []byte) (id Identity, err error) {
	if len(entryPoint) > 64 {
		return Identity{}, fmt.Errorf("SMBIOS entry point: %d bytes is too long", len(entryPoint))
	}
	if len(table) > MaxSMBIOSSize {
		return Identity{}, fmt.Errorf("SMBIOS table: %d bytes is larger than the %d-byte limit", len(table), MaxSMBIOSSize)
	}
	defer func() {
		if r := recover(); r != nil {
			id, err = Identity{}, fmt.Errorf("SMBIOS: malformed table (parser panic: %v)", r)
		}
	}()
	info, err := smbios.ParseInfo(entryPoint, table)
	if err != nil {
		return Identity{}, fmt.Errorf("SMBIOS: %w", err)
	}
	si, err := info.GetSystemInfo()
	if err != nil {
		return Identity{}, fmt.Errorf("SMBIOS system information (type 1): %w", err)
	}
	id = Identity{
		Source:         SourceDMI,
		Arch:           "amd64",
		SysVendor:      smbiosString(si.Manufacturer),
		ProductName:    smbiosString(si.ProductName),
		ProductVersion: smbiosString(si.Version),
		ProductFamily:  smbiosString(si.Family),
		ProductSKU:     smbiosString(si.SKUNumber),
		Serial:         smbiosString(si.SerialNumber),
	}
	if si.Length >= 0x18 { // the UUID field exists from SMBIOS 2.1 on
		id.SystemUUID = formatUUID(si.UUID, info.MajorVersion(), info.MinorVersion())
	}
	if bbs, err := info.GetBaseboardInfo(); err == nil && len(bbs) > 0 {
		id.BoardVendor = smbiosString(bbs[0].Manufacturer)
		id.BoardName = smbiosString(bbs[0].Product)
		id.BoardVersion = smbiosString(bbs[0].Version)
	}
	return id, nil
}

// smbiosString undoes pkg/smbios's stand-ins for an absent string.
func smbiosString(s string) string {
	if s == "Not Specified" || s == "<BAD INDEX>" {
		return ""
	}
	return clean(s)
}

// formatUUID prints the system UUID the way the kernel's product_uuid does:
// lower-case, with the first three fields little-endian from SMBIOS 2.6 on;
// all-zero and all-ones mean "not set".
func formatUUID(u smbios.UUID, major, minor uint8) string {
	if bytes.Equal(u[:], make([]byte, 16)) || bytes.Equal(u[:], bytes.Repeat([]byte{0xff}, 16)) {
		return ""
	}
	if major > 2 || (major == 2 && minor >= 6) {
		u[0], u[1], u[2], u[3] = u[3], u[2], u[1], u[0]
		u[4], u[5] = u[5], u[4]
		u[6], u[7] = u[7], u[6]
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// dmiFiles maps the kernel's /sys/class/dmi/id attribute files to fields.
func dmiFiles(id *Identity) map[string]*string {
	return map[string]*string{
		"sys_vendor": &id.SysVendor, "product_name": &id.ProductName,
		"product_version": &id.ProductVersion, "product_family": &id.ProductFamily,
		"product_sku": &id.ProductSKU, "board_vendor": &id.BoardVendor,
		"board_name": &id.BoardName, "board_version": &id.BoardVersion,
		"product_serial": &id.Serial, "product_uuid": &id.SystemUUID,
	}
}

// FromDMIDir identifies a machine from the kernel's DMI attribute files
// (/sys/class/dmi/id, or a copy of it). Missing files leave their field
// empty (product_serial and product_uuid are readable by root only); a
// directory with none of them is an error. Arch is "amd64".
func FromDMIDir(dir string) (Identity, error) {
	id := Identity{Source: SourceDMI, Arch: "amd64"}
	found := 0
	for name, field := range dmiFiles(&id) {
		b, err := boundedfile.ReadPath(filepath.Join(dir, name), 4096)
		switch {
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission):
			continue
		case err != nil:
			return Identity{}, fmt.Errorf("DMI: %w", err)
		}
		found++
		*field = clean(strings.TrimRight(string(b), "\n"))
	}
	if found == 0 {
		return Identity{}, fmt.Errorf("DMI: no attribute files in %s: %w", dir, fs.ErrNotExist)
	}
	id.SystemUUID = strings.ToLower(id.SystemUUID)
	return id, nil
}

// FromSMBIOSDump identifies a machine from a single-file dump as written by
// `dmidecode --dump-bin`: the entry point at offset 0, its table address
// pointing into the same file.
func FromSMBIOSDump(b []byte) (Identity, error) {
	if len(b) > MaxSMBIOSSize+64 {
		return Identity{}, fmt.Errorf("SMBIOS dump: %d bytes is too large", len(b))
	}
	var epLen int
	var addr, size uint64
	le := binary.LittleEndian
	switch {
	case len(b) >= 0x18 && string(b[:5]) == "_SM3_":
		epLen, size, addr = 0x18, uint64(le.Uint32(b[0x0c:])), le.Uint64(b[0x10:])
	case len(b) >= 0x1f && string(b[:4]) == "_SM_":
		epLen, size, addr = 0x1f, uint64(le.Uint16(b[0x16:])), uint64(le.Uint32(b[0x18:]))
	default:
		return Identity{}, errors.New("SMBIOS dump: no _SM_ or _SM3_ entry point at offset 0")
	}
	if addr < uint64(epLen) || addr > uint64(len(b)) {
		return Identity{}, fmt.Errorf("SMBIOS dump: table address %#x is outside the %d-byte file", addr, len(b))
	}
	// The 64-bit entry point gives a maximum size, not the exact one.
	end := min(addr+size, uint64(len(b)))
	return FromSMBIOS(b[:epLen], b[addr:end])
}
