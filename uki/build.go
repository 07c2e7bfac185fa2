package uki

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
)

// Inputs are the parts of a UKI. Every section holds its input verbatim:
// the command line exactly as given, with no NUL or newline added.
type Inputs struct {
	Stub    []byte // an unsigned systemd-stub PE image (linuxx64.efi.stub, linuxaa64.efi.stub)
	Linux   []byte // the kernel as an EFI application: bzImage on x86_64, the uncompressed Image on arm64
	Initrd  []byte // the initramfs; optional
	Cmdline []byte // the kernel command line; required (see Build)
	OSRel   []byte // os-release; optional
	DTB     []byte // a flattened device tree; optional
}

// sectionOrder is the order the sections are appended to the stub, in the
// file and in memory: the small ones first, the kernel and the initramfs
// last, as systemd's documentation lays a UKI out.
var sectionOrder = []string{".osrel", ".cmdline", ".dtb", ".linux", ".initrd"}

// minSectionAlign is the memory alignment of the appended sections: a page,
// so firmware that maps images per section can protect them.
const minSectionAlign = 4096

// Build appends the inputs to the stub as PE sections and returns the UKI.
// The output is a function of the inputs only: the COFF timestamp is
// zero, the stub's COFF symbol table and any signature are dropped, the
// layout follows from the stub and the input sizes, and the PE checksum is
// recomputed. The result is unsigned; sign it with Sign.
//
// The command line must not be empty: systemd-stub accepts a command line
// from the boot entry (even under Secure Boot) when the UKI has none, and
// an mcinit UKI must pin its own.
func Build(in Inputs) ([]byte, error) {
	if len(in.Linux) == 0 {
		return nil, errors.New("uki: no kernel")
	}
	if len(in.Cmdline) == 0 {
		return nil, errors.New("uki: empty command line (the stub would accept one from the boot entry)")
	}
	f, err := Parse(in.Stub)
	if err != nil {
		return nil, fmt.Errorf("uki: stub: %w", err)
	}
	// The stub finds its sections by name prefix (see MeasuredSections):
	// a stub section that would match one of them is refused.
	for _, s := range f.Sections {
		for _, n := range []string{".linux", ".osrel", ".cmdline", ".initrd", ".splash", ".dtb", ".pcrpkey", ".pcrsig"} {
			if strings.HasPrefix(s.Name, n) {
				return nil, fmt.Errorf("uki: stub already has a %s section (is it a UKI?)", s.Name)
			}
		}
	}
	if !pow2(f.FileAlignment) || f.FileAlignment < 512 || !pow2(f.SectionAlignment) {
		return nil, fmt.Errorf("uki: stub alignments (file %#x, section %#x) are not powers of two", f.FileAlignment, f.SectionAlignment)
	}
	secAlign := uint64(f.SectionAlignment)
	if secAlign < minSectionAlign {
		secAlign = minSectionAlign
	}
	fileAlign := uint64(f.FileAlignment)

	// Where the stub's own content ends, on disk and in memory.
	end := uint64(f.SizeOfHeaders)
	nextVA := uint64(f.SizeOfImage)
	firstRaw := uint64(math.MaxUint32)
	for _, s := range f.Sections {
		if s.SizeOfRawData != 0 {
			end = max(end, uint64(s.PointerToRaw)+uint64(s.SizeOfRawData))
			firstRaw = min(firstRaw, uint64(s.PointerToRaw))
		}
		nextVA = max(nextVA, uint64(s.VirtualAddress)+uint64(max(s.VirtualSize, s.SizeOfRawData)))
	}
	nextVA = alignUp(nextVA, secAlign)

	type add struct {
		name string
		data []byte
	}
	var adds []add
	for _, n := range sectionOrder {
		var d []byte
		switch n {
		case ".osrel":
			d = in.OSRel
		case ".cmdline":
			d = in.Cmdline
		case ".dtb":
			d = in.DTB
		case ".linux":
			d = in.Linux
		case ".initrd":
			d = in.Initrd
		}
		if len(d) > 0 {
			adds = append(adds, add{n, d})
		}
	}

	tableEnd := uint64(f.secTableOff) + uint64(f.nSections+len(adds))*sectionHdrSize
	if tableEnd > uint64(f.SizeOfHeaders) || tableEnd > firstRaw {
		return nil, fmt.Errorf("uki: no room in the stub's headers for %d more section headers", len(adds))
	}

	size := alignUp(end, fileAlign)
	for _, a := range adds {
		size += alignUp(uint64(len(a.data)), fileAlign)
	}
	if size > math.MaxUint32 {
		return nil, fmt.Errorf("uki: image of %d bytes is too large for PE", size)
	}
	out := make([]byte, size)
	copy(out, in.Stub[:end])
	le := binary.LittleEndian
	off := alignUp(end, fileAlign)
	var initData uint64
	for i, a := range adds {
		raw := alignUp(uint64(len(a.data)), fileAlign)
		copy(out[off:], a.data)
		h := out[uint64(f.secTableOff)+uint64(f.nSections+i)*sectionHdrSize:][:sectionHdrSize]
		clear(h)
		copy(h[:8], a.name)
		le.PutUint32(h[8:], uint32(len(a.data)))
		le.PutUint32(h[12:], uint32(nextVA))
		le.PutUint32(h[16:], uint32(raw))
		le.PutUint32(h[20:], uint32(off))
		le.PutUint32(h[36:], scnInitData|scnMemRead)
		off += raw
		initData += raw
		nextVA = alignUp(nextVA+uint64(len(a.data)), secAlign)
	}
	if nextVA > math.MaxUint32 {
		return nil, errors.New("uki: image too large for PE")
	}

	coff := out[f.peOff+4:]
	le.PutUint16(coff[2:], uint16(f.nSections+len(adds)))
	le.PutUint32(coff[4:], 0)  // TimeDateStamp
	le.PutUint32(coff[8:], 0)  // PointerToSymbolTable: the stub's symbols are dropped
	le.PutUint32(coff[12:], 0) // NumberOfSymbols
	opt := out[f.optOff:]
	le.PutUint32(opt[8:], le.Uint32(opt[8:])+uint32(initData)) // SizeOfInitializedData
	le.PutUint32(opt[56:], uint32(nextVA))                     // SizeOfImage
	if f.certDirOff >= 0 {
		clear(out[f.certDirOff : f.certDirOff+8])
	}
	le.PutUint32(out[f.checksumOff:], checksum(out, f.checksumOff))
	return out, nil
}

func pow2(v uint32) bool { return v != 0 && v&(v-1) == 0 }

// StubDir is where Debian's systemd-boot-efi package installs the stubs.
const StubDir = "/usr/lib/systemd/boot/efi"

// StubName returns the file name of systemd's UKI stub for a Go
// architecture (amd64, arm64), and the PE machine type it must carry.
func StubName(goarch string) (name string, machine uint16, err error) {
	switch goarch {
	case "amd64":
		return "linuxx64.efi.stub", 0x8664, nil
	case "arm64":
		return "linuxaa64.efi.stub", 0xaa64, nil
	}
	return "", 0, fmt.Errorf("uki: no stub for architecture %q (amd64 or arm64)", goarch)
}

// RemovableMediaPath returns the ESP path UEFI firmware boots without a
// boot entry (UEFI specification, "removable media boot behavior").
func RemovableMediaPath(goarch string) (string, error) {
	switch goarch {
	case "amd64":
		return "EFI/BOOT/BOOTX64.EFI", nil
	case "arm64":
		return "EFI/BOOT/BOOTAA64.EFI", nil
	}
	return "", fmt.Errorf("uki: no removable-media path for architecture %q", goarch)
}
