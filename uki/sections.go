package uki

import (
	"crypto"
	"fmt"
	"strings"
)

// StubMeasuredOrder is the order in which systemd-stub 252 measures a UKI's
// sections into PCR 11 (and systemd-measure predicts them). .pcrsig is
// never measured.
var StubMeasuredOrder = []string{".linux", ".osrel", ".cmdline", ".initrd", ".splash", ".dtb", ".pcrpkey"}

// StubPCR is the PCR systemd-stub measures the UKI's sections into.
const StubPCR = 11

// MeasuredSection is one section as systemd-stub measures it: the stub
// extends PCR 11 with H(Name + NUL) and then with H(content), where the
// content is Size bytes: Data followed by zeros when the section's virtual
// size exceeds its raw data (the loader zero-fills it in memory).
type MeasuredSection struct {
	Name string
	Data []byte
	Size uint32
}

// Digests returns the two digests the stub extends for this section:
// the name's (with its terminating NUL) and the content's.
func (s MeasuredSection) Digests(h crypto.Hash) (name, content []byte) {
	d := h.New()
	d.Write([]byte(s.Name))
	d.Write([]byte{0})
	name = d.Sum(nil)
	d = h.New()
	d.Write(s.Data)
	var zero [4096]byte
	for rest := uint64(s.Size) - uint64(len(s.Data)); rest > 0; {
		n := min(rest, uint64(len(zero)))
		d.Write(zero[:n])
		rest -= n
	}
	return name, d.Sum(nil)
}

// MeasuredSections lists the sections of a UKI that systemd-stub 252
// measures into PCR 11, in its measurement order, found the way the stub
// finds them: a section header matches when its name starts with the
// known name, the last match wins, and the size is the virtual size.
// Sections of size zero are skipped, as the stub skips them.
func MeasuredSections(pe []byte) ([]MeasuredSection, error) {
	f, err := Parse(pe)
	if err != nil {
		return nil, err
	}
	return f.MeasuredSections()
}

// MeasuredSections is the package function for an already parsed image.
func (f *File) MeasuredSections() ([]MeasuredSection, error) {
	found := make(map[string]Section)
	for _, s := range f.Sections {
		for _, n := range StubMeasuredOrder {
			if strings.HasPrefix(s.Name, n) {
				found[n] = s
			}
		}
	}
	var out []MeasuredSection
	for _, n := range StubMeasuredOrder {
		s, ok := found[n]
		if !ok || s.VirtualSize == 0 {
			continue
		}
		if uint64(s.VirtualAddress)+uint64(s.VirtualSize) > uint64(f.SizeOfImage) {
			return nil, fmt.Errorf("uki: section %s extends past SizeOfImage", s.Name)
		}
		raw := s.SizeOfRawData
		if raw > s.VirtualSize {
			raw = s.VirtualSize
		}
		out = append(out, MeasuredSection{
			Name: n,
			Data: f.raw(s, raw),
			Size: s.VirtualSize,
		})
	}
	if _, ok := found[".linux"]; !ok {
		return nil, fmt.Errorf("uki: no .linux section (not a UKI)")
	}
	return out, nil
}

// PCR11 returns the value systemd-stub leaves in PCR 11 of bank h after
// measuring these sections into a PCR that starts at zero, as
// `systemd-measure calculate --phase=` prints it.
func PCR11(sections []MeasuredSection, h crypto.Hash) []byte {
	pcr := make([]byte, h.Size())
	extend := func(d []byte) {
		x := h.New()
		x.Write(pcr)
		x.Write(d)
		pcr = x.Sum(nil)
	}
	for _, s := range sections {
		n, c := s.Digests(h)
		extend(n)
		extend(c)
	}
	return pcr
}
