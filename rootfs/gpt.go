// Package rootfs finds, mounts and switches into the real root: GPT lookup
// by partition UUID or label, filesystem detection, overlayfs for the
// development profile, and switch_root.
package rootfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"unicode/utf16"
)

// GUID is a GPT GUID in its on-disk (mixed-endian) byte order.
type GUID [16]byte

// String gives the canonical lowercase text form (the first three fields are
// little-endian on disk).
func (g GUID) String() string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(g[0:4]), binary.LittleEndian.Uint16(g[4:6]),
		binary.LittleEndian.Uint16(g[6:8]), g[8:10], g[10:16])
}

// ParseGUID reads the canonical text form.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	s = strings.ToLower(s)
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("bad GUID %q", s)
	}
	var raw [16]byte
	hexs := strings.ReplaceAll(s, "-", "")
	for i := 0; i < 16; i++ {
		var b byte
		for _, c := range hexs[2*i : 2*i+2] {
			switch {
			case c >= '0' && c <= '9':
				b = b<<4 | byte(c-'0')
			case c >= 'a' && c <= 'f':
				b = b<<4 | byte(c-'a'+10)
			default:
				return g, fmt.Errorf("bad GUID %q", s)
			}
		}
		raw[i] = b
	}
	// Text order is big-endian for the first three fields; store as on disk.
	g[0], g[1], g[2], g[3] = raw[3], raw[2], raw[1], raw[0]
	g[4], g[5] = raw[5], raw[4]
	g[6], g[7] = raw[7], raw[6]
	copy(g[8:], raw[8:])
	return g, nil
}

// Partition is one used GPT entry.
type Partition struct {
	Number   int // 1-based, as the kernel numbers partitions
	Type     GUID
	UUID     GUID
	Label    string
	FirstLBA uint64
	LastLBA  uint64
}

// Limits on untrusted GPT headers.
const (
	maxEntries   = 1024
	maxEntrySize = 4096
)

var gptSignature = []byte("EFI PART")

// ParseGPT reads the primary GPT from the start of a disk image or device.
// disk must hold at least LBA 0-1 and the entry array; sectorSize is 512 or
// 4096. The header and entry CRCs are checked.
func ParseGPT(disk []byte, sectorSize int) ([]Partition, error) {
	if sectorSize != 512 && sectorSize != 4096 {
		return nil, fmt.Errorf("gpt: sector size %d", sectorSize)
	}
	if len(disk) < 2*sectorSize {
		return nil, errors.New("gpt: disk too small")
	}
	hdr := disk[sectorSize : 2*sectorSize]
	if !bytes.Equal(hdr[:8], gptSignature) {
		return nil, errors.New("gpt: no GPT signature")
	}
	hdrSize := binary.LittleEndian.Uint32(hdr[12:16])
	if hdrSize < 92 || int(hdrSize) > sectorSize {
		return nil, fmt.Errorf("gpt: header size %d", hdrSize)
	}
	h := append([]byte(nil), hdr[:hdrSize]...)
	wantCRC := binary.LittleEndian.Uint32(h[16:20])
	binary.LittleEndian.PutUint32(h[16:20], 0)
	if crc32.ChecksumIEEE(h) != wantCRC {
		return nil, errors.New("gpt: header CRC mismatch")
	}
	entLBA := binary.LittleEndian.Uint64(hdr[72:80])
	n := binary.LittleEndian.Uint32(hdr[80:84])
	size := binary.LittleEndian.Uint32(hdr[84:88])
	entCRC := binary.LittleEndian.Uint32(hdr[88:92])
	if n > maxEntries || size < 128 || size > maxEntrySize || size%8 != 0 {
		return nil, fmt.Errorf("gpt: %d entries of %d bytes", n, size)
	}
	start := entLBA * uint64(sectorSize)
	end := start + uint64(n)*uint64(size)
	if entLBA < 2 || end > uint64(len(disk)) {
		return nil, fmt.Errorf("gpt: entry array at LBA %d outside the %d bytes read", entLBA, len(disk))
	}
	arr := disk[start:end]
	if crc32.ChecksumIEEE(arr) != entCRC {
		return nil, errors.New("gpt: entry array CRC mismatch")
	}
	var parts []Partition
	for i := 0; i < int(n); i++ {
		e := arr[i*int(size) : (i+1)*int(size)]
		var p Partition
		copy(p.Type[:], e[0:16])
		if p.Type == (GUID{}) {
			continue
		}
		copy(p.UUID[:], e[16:32])
		p.Number = i + 1
		p.FirstLBA = binary.LittleEndian.Uint64(e[32:40])
		p.LastLBA = binary.LittleEndian.Uint64(e[40:48])
		p.Label = decodeLabel(e[56:128])
		parts = append(parts, p)
	}
	return parts, nil
}

// decodeLabel turns the UTF-16LE name field into a printable string.
func decodeLabel(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	var sb strings.Builder
	for _, r := range utf16.Decode(u) {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			r = '?'
		}
		sb.WriteRune(r)
	}
	return sb.String()
}
