package uki

import (
	"crypto"
	_ "crypto/sha1" // register the hashes firmware PCR banks use
	_ "crypto/sha256"
	_ "crypto/sha512"
	"fmt"
	"sort"
)

// AuthenticodeDigest returns the Authenticode PE image hash of pe with hash
// h (crypto.SHA1, SHA256, SHA384 or SHA512). This is the digest a
// Secure Boot signature signs and the digest UEFI firmware extends into
// PCR 4 as EV_EFI_BOOT_SERVICES_APPLICATION when it starts the image, per
// PCR bank. The hash covers the headers without the CheckSum field and
// the certificate table's data directory entry, then every section's raw
// data in file order, then whatever follows the sections except the
// certificate table — in the order and with the bounds EDK2 uses.
func AuthenticodeDigest(pe []byte, h crypto.Hash) ([]byte, error) {
	f, err := Parse(pe)
	if err != nil {
		return nil, err
	}
	return f.AuthenticodeDigest(h)
}

// AuthenticodeDigest is the package function for an already parsed image.
func (f *File) AuthenticodeDigest(h crypto.Hash) ([]byte, error) {
	switch h {
	case crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512:
	default:
		return nil, fmt.Errorf("authenticode: unsupported hash %v", h)
	}
	b := f.data
	d := h.New()
	d.Write(b[:f.checksumOff])
	if f.certDirOff >= 0 {
		d.Write(b[f.checksumOff+4 : f.certDirOff])
		d.Write(b[f.certDirOff+8 : f.SizeOfHeaders])
	} else {
		d.Write(b[f.checksumOff+4 : f.SizeOfHeaders])
	}
	sum := uint64(f.SizeOfHeaders)
	secs := make([]Section, 0, len(f.Sections))
	for _, s := range f.Sections {
		if s.SizeOfRawData != 0 {
			secs = append(secs, s)
		}
	}
	sort.SliceStable(secs, func(i, j int) bool { return secs[i].PointerToRaw < secs[j].PointerToRaw })
	for _, s := range secs {
		d.Write(b[s.PointerToRaw : s.PointerToRaw+s.SizeOfRawData])
		sum += uint64(s.SizeOfRawData)
	}
	size := uint64(len(b))
	if size > sum {
		cert := uint64(f.certSize)
		switch {
		case size > sum+cert:
			d.Write(b[sum : size-cert])
		case size < sum+cert:
			return nil, fmt.Errorf("authenticode: certificate table of %d bytes overlaps hashed data", cert)
		}
	}
	return d.Sum(nil), nil
}
