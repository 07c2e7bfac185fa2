package modinfo

import (
	"encoding/binary"
	"testing"
)

// FuzzParseModinfo: parse must not panic or hang on any input. The seeds
// are tiny synthetic ELF files (tinyELF): with real 19 KB modules as seeds
// the engine spent whole runs minimizing the first interesting
// mutation (about 4 execs/s reported), so a real module is no seed here.
func FuzzParseModinfo(f *testing.F) {
	f.Add(tinyELF(true, binary.LittleEndian, "license=GPL\x00name=crc7\x00depends=\x00"))
	f.Add(tinyELF(false, binary.BigEndian, "name=x\x00alias=y\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parse(b) // must not panic or hang
	})
}

// tinyELF builds the smallest ELF relocatable (64 or 32 bits) with a
// .modinfo section holding modinfo: header, the two sections' bytes, and
// three section headers (null, .modinfo, .shstrtab).
func tinyELF(is64 bool, bo binary.ByteOrder, modinfo string) []byte {
	const shstr = "\x00.modinfo\x00.shstrtab\x00"
	ehsize, shentsize := 52, 40
	class := byte(1)
	if is64 {
		ehsize, shentsize, class = 64, 64, 2
	}
	data := byte(1)
	if bo == binary.BigEndian {
		data = 2
	}
	modOff := ehsize
	strOff := modOff + len(modinfo)
	shoff := strOff + len(shstr)
	b := make([]byte, shoff+3*shentsize)
	copy(b, []byte{0x7f, 'E', 'L', 'F', class, data, 1})
	bo.PutUint16(b[16:], 1) // ET_REL
	bo.PutUint32(b[20:], 1) // EV_CURRENT
	if is64 {
		bo.PutUint64(b[0x28:], uint64(shoff))
		bo.PutUint16(b[0x34:], uint16(ehsize))
		bo.PutUint16(b[0x3a:], uint16(shentsize))
		bo.PutUint16(b[0x3c:], 3)
		bo.PutUint16(b[0x3e:], 2)
	} else {
		bo.PutUint32(b[0x20:], uint32(shoff))
		bo.PutUint16(b[0x28:], uint16(ehsize))
		bo.PutUint16(b[0x2e:], uint16(shentsize))
		bo.PutUint16(b[0x30:], 3)
		bo.PutUint16(b[0x32:], 2)
	}
	copy(b[modOff:], modinfo)
	copy(b[strOff:], shstr)
	sect := func(i, name, typ, off, size int) {
		h := b[shoff+i*shentsize:]
		bo.PutUint32(h, uint32(name))
		bo.PutUint32(h[4:], uint32(typ))
		if is64 {
			bo.PutUint64(h[0x18:], uint64(off))
			bo.PutUint64(h[0x20:], uint64(size))
		} else {
			bo.PutUint32(h[0x10:], uint32(off))
			bo.PutUint32(h[0x14:], uint32(size))
		}
	}
	sect(1, 1, 1, modOff, len(modinfo)) // .modinfo, SHT_PROGBITS
	sect(2, 10, 3, strOff, len(shstr))  // .shstrtab, SHT_STRTAB
	return b
}
