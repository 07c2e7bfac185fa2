package uki

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"os"
	"testing"
)

// minimalPE is a valid PE32+ image of 0x400 bytes with one section.
func minimalPE() []byte {
	b := make([]byte, 0x400)
	le := binary.LittleEndian
	copy(b, "MZ")
	le.PutUint32(b[0x3c:], 0x40)
	copy(b[0x40:], "PE\x00\x00")
	coff := b[0x44:]
	le.PutUint16(coff[0:], 0x8664)
	le.PutUint16(coff[2:], 1)
	le.PutUint16(coff[16:], 240)
	opt := b[0x58:]
	le.PutUint16(opt[0:], peMagic32Plus)
	le.PutUint32(opt[16:], 0x1000) // entry point
	le.PutUint32(opt[32:], 0x1000) // SectionAlignment
	le.PutUint32(opt[36:], 0x200)  // FileAlignment
	le.PutUint32(opt[56:], 0x2000) // SizeOfImage
	le.PutUint32(opt[60:], 0x200)  // SizeOfHeaders
	le.PutUint16(opt[68:], 10)     // EFI application
	le.PutUint32(opt[108:], 16)    // NumberOfRvaAndSizes
	sec := b[0x58+240:]
	copy(sec, ".text")
	le.PutUint32(sec[8:], 0x10)
	le.PutUint32(sec[12:], 0x1000)
	le.PutUint32(sec[16:], 0x200)
	le.PutUint32(sec[20:], 0x200)
	le.PutUint32(sec[36:], scnCode|scnMemExecute|scnMemRead)
	copy(b[0x200:], "\xc3 return")
	return b
}

func TestMinimalPE(t *testing.T) {
	f, err := Parse(minimalPE())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Sections) != 1 || f.Sections[0].Name != ".text" {
		t.Fatalf("sections %+v", f.Sections)
	}
	uki, err := Build(Inputs{Stub: minimalPE(), Linux: []byte("K"), Cmdline: []byte("c")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := MeasuredSections(uki); err != nil {
		t.Fatal(err)
	}
}

// FuzzParse feeds arbitrary bytes to the PE parser and everything that
// reads a parsed image: none may panic or read out of bounds, and a UKI
// built on a stub that parses must parse and list its sections.
func FuzzParse(f *testing.F) {
	f.Add(minimalPE())
	if b, err := os.ReadFile(hostStubX64); err == nil {
		f.Add(b[:0x400])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		_ = p.Checksum()
		for _, s := range p.Sections {
			_ = p.Data(s)
		}
		if _, err := p.AuthenticodeDigest(crypto.SHA256); err != nil {
			return
		}
		_, _ = p.MeasuredSections()
		uki, err := Build(Inputs{Stub: b, Linux: []byte("kernel"), Cmdline: []byte("cmdline")})
		if err != nil {
			return
		}
		secs, err := MeasuredSections(uki)
		if err != nil {
			t.Fatalf("built UKI does not list: %v", err)
		}
		var cmd []byte
		for _, s := range secs {
			if s.Name == ".cmdline" {
				cmd = s.Data
			}
		}
		if !bytes.Equal(cmd, []byte("cmdline")) {
			t.Fatalf("built UKI's .cmdline is %q", cmd)
		}
	})
}
