// Package modinfo is the host side of kernel module handling: it reads
// module files (decompressing .ko.xz, .ko.zst and .ko.gz) and their
// .modinfo section, and opens module trees that have no modules.dep.
//
// It is separate from package kmodules so that /init, which imports
// kmodules to load modules, links no decompressor and no ELF reader: the
// images mcinit builds hold uncompressed modules and a modules.dep.
package modinfo

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/mcinit/mcinit/internal/boundedfile"
	"github.com/mcinit/mcinit/kmodules"
)

// Open indexes the module root modRoot like kmodules.Open, and reads a
// module's .modinfo (with Read) when the root has no modules.dep, as a
// kernel package unpacked with dpkg -x does.
func Open(modRoot string) (*kmodules.Tree, error) {
	return kmodules.OpenWith(modRoot, Read)
}

// ResolveDeps is kmodules.ResolveDeps for module roots with or without a
// modules.dep.
func ResolveDeps(modRoot string, names []string) ([]kmodules.Dep, error) {
	t, err := Open(modRoot)
	if err != nil {
		return nil, err
	}
	return t.Resolve(names)
}

// Read reads a module file's .modinfo section (key=value strings; the
// first of a repeated key wins), decompressing .xz/.zst/.gz files. It
// works for modules of any architecture.
func Read(path string) (map[string]string, error) {
	img, err := ReadModule(path)
	if err != nil {
		return nil, err
	}
	info, err := parse(img)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return info, nil
}

func parse(img []byte) (map[string]string, error) {
	data, err := elfSection(img, ".modinfo")
	if err != nil {
		return nil, err
	}
	info := map[string]string{}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok {
			if _, dup := info[k]; !dup {
				info[k] = v
			}
		}
	}
	return info, nil
}

// elfSection returns the bytes of the named section of an ELF image (32 or
// 64 bits, either byte order). It is a bounds-checked walk of the section
// headers, written out because debug/elf allocates from header values and
// is slow on hostile files.
func elfSection(img []byte, name string) ([]byte, error) {
	if len(img) < 52 || string(img[:4]) != elf.ELFMAG {
		return nil, errors.New("not an ELF file")
	}
	var bo binary.ByteOrder
	switch elf.Data(img[elf.EI_DATA]) {
	case elf.ELFDATA2LSB:
		bo = binary.LittleEndian
	case elf.ELFDATA2MSB:
		bo = binary.BigEndian
	default:
		return nil, errors.New("ELF: bad byte order")
	}
	var shoff, shentsize, shnum, shstrndx uint64
	is64 := elf.Class(img[elf.EI_CLASS]) == elf.ELFCLASS64
	switch {
	case is64 && len(img) >= 64:
		shoff = bo.Uint64(img[0x28:])
		shentsize, shnum, shstrndx = uint64(bo.Uint16(img[0x3a:])), uint64(bo.Uint16(img[0x3c:])), uint64(bo.Uint16(img[0x3e:]))
	case !is64 && elf.Class(img[elf.EI_CLASS]) == elf.ELFCLASS32:
		shoff = uint64(bo.Uint32(img[0x20:]))
		shentsize, shnum, shstrndx = uint64(bo.Uint16(img[0x2e:])), uint64(bo.Uint16(img[0x30:])), uint64(bo.Uint16(img[0x32:]))
	default:
		return nil, errors.New("ELF: bad class")
	}
	size := uint64(len(img))
	minEnt := uint64(40)
	if is64 {
		minEnt = 64
	}
	if shentsize < minEnt || shnum == 0 || shstrndx >= shnum || shoff > size || shnum*shentsize > size-shoff {
		return nil, errors.New("ELF: section header table out of bounds")
	}
	// section returns the file range of section i.
	section := func(i uint64) (nameOff, off, n uint64) {
		h := img[shoff+i*shentsize:]
		if is64 {
			return uint64(bo.Uint32(h)), bo.Uint64(h[0x18:]), bo.Uint64(h[0x20:])
		}
		return uint64(bo.Uint32(h)), uint64(bo.Uint32(h[0x10:])), uint64(bo.Uint32(h[0x14:]))
	}
	within := func(off, n uint64) bool { return off <= size && n <= size-off }
	_, strOff, strLen := section(shstrndx)
	if !within(strOff, strLen) {
		return nil, errors.New("ELF: section name table out of bounds")
	}
	names := img[strOff : strOff+strLen]
	for i := uint64(0); i < shnum; i++ {
		nameOff, off, n := section(i)
		if nameOff >= uint64(len(names)) {
			continue
		}
		nm := names[nameOff:]
		if e := bytes.IndexByte(nm, 0); e >= 0 {
			nm = nm[:e]
		}
		if string(nm) != name {
			continue
		}
		if !within(off, n) {
			return nil, fmt.Errorf("ELF: section %s out of bounds", name)
		}
		return img[off : off+n], nil
	}
	return nil, fmt.Errorf("no %s section", name)
}

// PlainPath is a module file path with any compression suffix removed:
// where ReadModule's output goes in an image ("a/b.ko.xz" → "a/b.ko").
func PlainPath(path string) string {
	return strings.TrimSuffix(path, kmodules.Compression(path))
}

// ReadModule reads a module file, decompressing by suffix. The
// (decompressed) module may be at most kmodules.MaxModuleSize bytes; errors
// name the file.
func ReadModule(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	switch kmodules.Compression(path) {
	case ".xz":
		xr, err := xz.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r = xr
	case ".zst":
		// One goroutine and a bounded window: a module is small, and a
		// hostile frame header must not make the decoder allocate much.
		zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(kmodules.MaxModuleSize))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	case ".gz":
		gr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r = gr
	}
	return boundedfile.ReadAll(r, path, kmodules.MaxModuleSize) // errors name path
}
