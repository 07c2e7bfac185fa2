// Package uki builds and inspects Unified Kernel Images: a systemd EFI stub
// (a PE/COFF image) with the kernel, initramfs, command line, os-release and
// device tree appended as PE sections.
//
// What other packages use:
//   - Build: a UKI from a stub and its inputs, byte-identical for identical
//     inputs.
//   - AuthenticodeDigest: the PE image hash of the Authenticode
//     specification. UEFI firmware measures exactly this digest into PCR 4
//     (event EV_EFI_BOOT_SERVICES_APPLICATION) when it starts the image, one
//     digest per active PCR bank.
//   - MeasuredSections and PCR11: what systemd-stub (252) measures into
//     PCR 11 before it starts the kernel, and the value it leaves there.
//   - Sign: an Authenticode signature (PKCS#7 SignedData) that sbverify and
//     UEFI Secure Boot accept.
//
// Offsets and field layouts come from the Microsoft PE/COFF specification
// and the Authenticode PE specification.
package uki

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// PE/COFF constants used here.
const (
	peMagic32     = 0x10b
	peMagic32Plus = 0x20b

	coffHeaderSize   = 20
	sectionHdrSize   = 40
	dirSecurity      = 4 // index of the certificate table data directory
	maxSections      = 96
	scnInitData      = 0x00000040
	scnCode          = 0x00000020
	scnMemExecute    = 0x20000000
	scnMemRead       = 0x40000000
	winCertRevision2 = 0x0200
	winCertPKCS7     = 0x0002
)

// Section is one PE section header plus its place in the file.
type Section struct {
	Name            string // up to 8 bytes, NULs trimmed
	VirtualSize     uint32
	VirtualAddress  uint32
	SizeOfRawData   uint32
	PointerToRaw    uint32
	Characteristics uint32
}

// File is a parsed PE image: just the fields this package needs, with the
// offsets of the header fields it may rewrite.
type File struct {
	data []byte

	peOff       int // "PE\0\0" signature
	optOff      int // optional header
	optSize     int
	magic       uint16
	secTableOff int
	nSections   int

	checksumOff int // file offset of OptionalHeader.CheckSum
	certDirOff  int // file offset of the certificate table data directory, -1 if absent

	SectionAlignment uint32
	FileAlignment    uint32
	SizeOfImage      uint32
	SizeOfHeaders    uint32
	Machine          uint16
	Sections         []Section

	certOff, certSize uint32 // certificate table (file offset, size), 0 when unsigned
}

// Parse reads the headers of a PE image. It checks every offset against the
// data, so it is safe on untrusted input; it does not copy data.
func Parse(b []byte) (*File, error) {
	if len(b) < 0x40 || b[0] != 'M' || b[1] != 'Z' {
		return nil, errors.New("pe: no MZ header")
	}
	peOff := int(binary.LittleEndian.Uint32(b[0x3c:]))
	if peOff < 0x40 || peOff > len(b)-4-coffHeaderSize {
		return nil, fmt.Errorf("pe: PE header offset %#x out of range", peOff)
	}
	if string(b[peOff:peOff+4]) != "PE\x00\x00" {
		return nil, errors.New("pe: no PE signature")
	}
	f := &File{data: b, peOff: peOff, certDirOff: -1}
	coff := b[peOff+4:]
	f.Machine = binary.LittleEndian.Uint16(coff[0:])
	f.nSections = int(binary.LittleEndian.Uint16(coff[2:]))
	f.optSize = int(binary.LittleEndian.Uint16(coff[16:]))
	f.optOff = peOff + 4 + coffHeaderSize
	if f.nSections > maxSections {
		return nil, fmt.Errorf("pe: %d sections, more than %d", f.nSections, maxSections)
	}
	if f.optSize < 2 || f.optOff+f.optSize > len(b) {
		return nil, fmt.Errorf("pe: optional header size %d out of range", f.optSize)
	}
	opt := b[f.optOff : f.optOff+f.optSize]
	f.magic = binary.LittleEndian.Uint16(opt)
	var dirOff, nDirsOff int // offsets in the optional header
	switch f.magic {
	case peMagic32:
		dirOff, nDirsOff = 96, 92
	case peMagic32Plus:
		dirOff, nDirsOff = 112, 108
	default:
		return nil, fmt.Errorf("pe: optional header magic %#x is neither PE32 nor PE32+", f.magic)
	}
	if f.optSize < dirOff {
		return nil, fmt.Errorf("pe: optional header of %d bytes is too short", f.optSize)
	}
	f.SectionAlignment = binary.LittleEndian.Uint32(opt[32:])
	f.FileAlignment = binary.LittleEndian.Uint32(opt[36:])
	f.SizeOfImage = binary.LittleEndian.Uint32(opt[56:])
	f.SizeOfHeaders = binary.LittleEndian.Uint32(opt[60:])
	f.checksumOff = f.optOff + 64
	nDirs := int(binary.LittleEndian.Uint32(opt[nDirsOff:]))
	if nDirs > 16 || dirOff+8*nDirs > f.optSize {
		return nil, fmt.Errorf("pe: %d data directories do not fit the optional header", nDirs)
	}
	if nDirs > dirSecurity {
		f.certDirOff = f.optOff + dirOff + 8*dirSecurity
		f.certOff = binary.LittleEndian.Uint32(b[f.certDirOff:])
		f.certSize = binary.LittleEndian.Uint32(b[f.certDirOff+4:])
		if f.certSize != 0 && (uint64(f.certOff)+uint64(f.certSize) > uint64(len(b)) || f.certOff < f.SizeOfHeaders) {
			return nil, fmt.Errorf("pe: certificate table %#x+%#x outside the file", f.certOff, f.certSize)
		}
	}
	if f.SizeOfHeaders > uint32(len(b)) {
		return nil, fmt.Errorf("pe: SizeOfHeaders %#x beyond the file", f.SizeOfHeaders)
	}
	f.secTableOff = f.optOff + f.optSize
	if f.secTableOff+f.nSections*sectionHdrSize > int(f.SizeOfHeaders) {
		return nil, errors.New("pe: section table extends past SizeOfHeaders")
	}
	for i := 0; i < f.nSections; i++ {
		h := b[f.secTableOff+i*sectionHdrSize:]
		s := Section{
			Name:            trimName(h[:8]),
			VirtualSize:     binary.LittleEndian.Uint32(h[8:]),
			VirtualAddress:  binary.LittleEndian.Uint32(h[12:]),
			SizeOfRawData:   binary.LittleEndian.Uint32(h[16:]),
			PointerToRaw:    binary.LittleEndian.Uint32(h[20:]),
			Characteristics: binary.LittleEndian.Uint32(h[36:]),
		}
		if s.SizeOfRawData != 0 && uint64(s.PointerToRaw)+uint64(s.SizeOfRawData) > uint64(len(b)) {
			return nil, fmt.Errorf("pe: section %q raw data %#x+%#x beyond the file", s.Name, s.PointerToRaw, s.SizeOfRawData)
		}
		f.Sections = append(f.Sections, s)
	}
	return f, nil
}

func trimName(b []byte) string {
	n := 0
	for n < len(b) && b[n] != 0 {
		n++
	}
	return string(b[:n])
}

// Data returns a section's content as the loader sees it: VirtualSize bytes
// (the exact content length for sections this package writes), cut to the
// raw data present in the file. systemd-stub measures the same bytes.
func (f *File) Data(s Section) []byte {
	n := s.VirtualSize
	if n > s.SizeOfRawData {
		n = s.SizeOfRawData
	}
	return f.raw(s, n)
}

// raw returns the first n bytes of s's raw data. Parse bounds only
// sections that have raw data, so an empty one may point anywhere.
func (f *File) raw(s Section, n uint32) []byte {
	if n == 0 {
		return nil
	}
	return f.data[s.PointerToRaw : s.PointerToRaw+n]
}

// Section returns the first section with that name.
func (f *File) Section(name string) (Section, bool) {
	for _, s := range f.Sections {
		if s.Name == name {
			return s, true
		}
	}
	return Section{}, false
}

// Signed reports whether the image carries a certificate table.
func (f *File) Signed() bool { return f.certSize != 0 }

// checksum computes the PE image checksum (the algorithm of ImageHlp's
// CheckSumMappedFile): 16-bit one's-complement-style sum of the file with
// the CheckSum field read as zero, folded, plus the file length.
func checksum(b []byte, checksumOff int) uint32 {
	var sum uint64
	for i := 0; i+1 < len(b); i += 2 {
		if i == checksumOff || i == checksumOff+2 {
			continue
		}
		sum += uint64(binary.LittleEndian.Uint16(b[i:]))
		sum = (sum & 0xffff) + (sum >> 16)
	}
	if len(b)%2 == 1 {
		sum += uint64(b[len(b)-1])
		sum = (sum & 0xffff) + (sum >> 16)
	}
	sum = (sum & 0xffff) + (sum >> 16)
	return uint32(sum) + uint32(len(b))
}

// Checksum returns the PE checksum the image should carry.
func (f *File) Checksum() uint32 { return checksum(f.data, f.checksumOff) }

// StoredChecksum returns the CheckSum field as written.
func (f *File) StoredChecksum() uint32 { return binary.LittleEndian.Uint32(f.data[f.checksumOff:]) }

func alignUp(v, a uint64) uint64 {
	if a == 0 {
		return v
	}
	return (v + a - 1) / a * a
}
