package identity

import (
	"encoding/binary"
)

// smbiosSpec describes tables for encodeSMBIOS, a small SMBIOS writer used
// to build edge cases; TestEncoderAgainstDmidecode checks it against
// dmidecode.
type smbiosSpec struct {
	major, minor                         uint8
	sm3                                  bool // 64-bit entry point
	vendor, product, version, serial     string
	sku, family                          string
	uuid                                 [16]byte
	boardVendor, boardName, boardVersion string
	noSystem, noBoard                    bool
	sysLen                               uint8 // type 1 formatted length; 0 → 0x1b
}

// structure encodes one SMBIOS structure: header, formatted area, strings.
func structure(typ uint8, handle uint16, formatted []byte, strs []string) []byte {
	b := []byte{typ, byte(4 + len(formatted)), byte(handle), byte(handle >> 8)}
	b = append(b, formatted...)
	if len(strs) == 0 {
		return append(b, 0, 0)
	}
	for _, s := range strs {
		b = append(b, s...)
		b = append(b, 0)
	}
	return append(b, 0)
}

// strTab assigns string numbers, 0 for "".
type strTab struct{ strs []string }

func (t *strTab) add(s string) byte {
	if s == "" {
		return 0
	}
	t.strs = append(t.strs, s)
	return byte(len(t.strs))
}

func encodeSMBIOS(s smbiosSpec) (ep, table []byte) {
	if s.major == 0 {
		s.major, s.minor = 2, 8
	}
	n := uint16(0)
	if !s.noSystem {
		var st strTab
		f := []byte{st.add(s.vendor), st.add(s.product), st.add(s.version), st.add(s.serial)}
		f = append(f, s.uuid[:]...)
		f = append(f, 6) // wake-up type: power switch
		f = append(f, st.add(s.sku), st.add(s.family))
		if s.sysLen != 0 {
			f = f[:int(s.sysLen)-4]
		}
		table = append(table, structure(1, 0x100, f, st.strs)...)
		n++
	}
	if !s.noBoard {
		var st strTab
		f := []byte{st.add(s.boardVendor), st.add(s.boardName), st.add(s.boardVersion), 0, 0, 1, 0, 0, 0, 0x0a, 0}
		table = append(table, structure(2, 0x200, f, st.strs)...)
		n++
	}
	table = append(table, structure(127, 0x7f00, nil, nil)...)
	n++
	if s.sm3 {
		ep = make([]byte, 0x18)
		copy(ep, "_SM3_")
		ep[6], ep[7], ep[8], ep[9], ep[10] = 0x18, s.major, s.minor, 0, 1
		binary.LittleEndian.PutUint32(ep[0x0c:], uint32(len(table)))
		binary.LittleEndian.PutUint64(ep[0x10:], 0x20) // where a dump puts the table
		ep[5] = checksum(ep)
		return ep, table
	}
	ep = make([]byte, 0x1f)
	copy(ep, "_SM_")
	ep[5], ep[6], ep[7] = 0x1f, s.major, s.minor
	binary.LittleEndian.PutUint16(ep[8:], 0x100)
	copy(ep[0x10:], "_DMI_")
	binary.LittleEndian.PutUint16(ep[0x16:], uint16(len(table)))
	binary.LittleEndian.PutUint32(ep[0x18:], 0x20)
	binary.LittleEndian.PutUint16(ep[0x1c:], n)
	ep[0x1e] = s.major<<4 | s.minor&0xf
	ep[0x15] = checksum(ep[0x10:])
	ep[4] = checksum(ep)
	return ep, table
}

// checksum gives the byte that makes b (with that byte zero) sum to 0.
func checksum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return -s
}

// dumpFile lays out ep and table the way `dmidecode --dump-bin` does: the
// entry point at 0 with its table address patched to 0x20, the table at
// 0x20. The entry point's checksums are recomputed.
func dumpFile(ep, table []byte) []byte {
	out := make([]byte, 0x20+len(table))
	copy(out, ep)
	copy(out[0x20:], table)
	if string(ep[:5]) == "_SM3_" {
		binary.LittleEndian.PutUint64(out[0x10:], 0x20)
		out[5] = 0
		out[5] = checksum(out[:0x18])
	} else {
		binary.LittleEndian.PutUint32(out[0x18:], 0x20)
		out[0x15] = 0
		out[0x15] = checksum(out[0x10:0x1f])
		out[4] = 0
		out[4] = checksum(out[:0x1f])
	}
	return out
}
