package uki

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"sort"
	"unicode/utf16"
)

// Signing is done here in Go rather than by driving sbsign: the signature
// then depends only on the image, key and certificate (RSA PKCS#1 v1.5 is
// deterministic and no signing time is added, which OpenSSL, and so sbsign,
// always adds), so signed UKIs stay byte-identical across builds, and no
// external tool is needed to build arm64 images on any host. sbverify is the
// interop check in the tests.

var (
	oidSignedData       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidSpcIndirectData  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 4}
	oidSpcPEImageData   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 15}
	oidContentType      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidSHA256           = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidRSAEncryption    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	asn1NULL            = asn1.RawValue{Tag: asn1.TagNull}
	sha256AlgorithmID   = pkix.AlgorithmIdentifier{Algorithm: oidSHA256, Parameters: asn1NULL}
	rsaEncryptionAlgoID = pkix.AlgorithmIdentifier{Algorithm: oidRSAEncryption, Parameters: asn1NULL}
)

// LoadSigner reads an unencrypted PEM private key (PKCS#8 or PKCS#1 RSA)
// and a PEM certificate. Encrypted keys are refused with a hint: decrypt
// them first, e.g. `openssl pkey -in K -out K.plain`.
func LoadSigner(keyPEM, certPEM []byte) (crypto.Signer, *x509.Certificate, error) {
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, nil, errors.New("signing key: no PEM block")
	}
	var key any
	var err error
	switch kb.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(kb.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return nil, nil, errors.New("signing key is encrypted: decrypt it first (openssl pkey -in KEY -out PLAIN)")
	default:
		return nil, nil, fmt.Errorf("signing key: unsupported PEM type %q", kb.Type)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("signing key: %w", err)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("signing key: %T is not RSA (UEFI Secure Boot verifies RSA signatures)", key)
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, nil, errors.New("signing certificate: no CERTIFICATE PEM block")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("signing certificate: %w", err)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok || !pub.Equal(&rk.PublicKey) {
		return nil, nil, errors.New("signing certificate does not match the key")
	}
	return rk, cert, nil
}

// Sign returns pe with an Authenticode signature (SHA-256, RSA) by key and
// cert appended as the certificate table. The image must be unsigned. The
// signature is a PKCS#7 SignedData over SpcIndirectDataContent holding the
// image's Authenticode digest, with the signing certificate embedded.
func Sign(pe []byte, key crypto.Signer, cert *x509.Certificate) ([]byte, error) {
	if key == nil || cert == nil {
		return nil, errors.New("sign: no key or certificate")
	}
	if _, ok := key.Public().(*rsa.PublicKey); !ok {
		return nil, errors.New("sign: only RSA keys are supported")
	}
	f, err := Parse(pe)
	if err != nil {
		return nil, err
	}
	if f.Signed() {
		return nil, errors.New("sign: image is already signed")
	}
	if f.certDirOff < 0 {
		return nil, errors.New("sign: image has no certificate table data directory")
	}
	// The certificate table starts 8-byte aligned; the padding before it is
	// part of the hashed image.
	img := make([]byte, alignUp(uint64(len(pe)), 8))
	copy(img, pe)
	f, err = Parse(img)
	if err != nil {
		return nil, err
	}
	digest, err := f.AuthenticodeDigest(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	p7, err := signedData(digest, key, cert)
	if err != nil {
		return nil, err
	}
	certLen := 8 + len(p7)
	table := make([]byte, alignUp(uint64(certLen), 8))
	binary.LittleEndian.PutUint32(table[0:], uint32(certLen))
	binary.LittleEndian.PutUint16(table[4:], winCertRevision2)
	binary.LittleEndian.PutUint16(table[6:], winCertPKCS7)
	copy(table[8:], p7)
	out := append(img, table...)
	binary.LittleEndian.PutUint32(out[f.certDirOff:], uint32(len(img)))
	binary.LittleEndian.PutUint32(out[f.certDirOff+4:], uint32(len(table)))
	binary.LittleEndian.PutUint32(out[f.checksumOff:], checksum(out, f.checksumOff))
	return out, nil
}

// spcIndirectDataContent builds the DER of SpcIndirectDataContent for a
// SHA-256 image digest, with the "<<<Obsolete>>>" file link every signer
// writes.
func spcIndirectDataContent(digest []byte) ([]byte, error) {
	obsolete := utf16.Encode([]rune("<<<Obsolete>>>"))
	bmp := make([]byte, 2*len(obsolete))
	for i, c := range obsolete {
		binary.BigEndian.PutUint16(bmp[2*i:], c)
	}
	unicode, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, Bytes: bmp})
	if err != nil {
		return nil, err
	}
	file, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, IsCompound: true, Bytes: unicode})
	if err != nil {
		return nil, err
	}
	type peImageData struct {
		Flags asn1.BitString
		File  asn1.RawValue
	}
	type attributeTypeAndValue struct {
		Type  asn1.ObjectIdentifier
		Value peImageData
	}
	type digestInfo struct {
		Algorithm pkix.AlgorithmIdentifier
		Digest    []byte
	}
	type indirectData struct {
		Data          attributeTypeAndValue
		MessageDigest digestInfo
	}
	return asn1.Marshal(indirectData{
		Data: attributeTypeAndValue{
			Type: oidSpcPEImageData,
			Value: peImageData{
				File: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: file},
			},
		},
		MessageDigest: digestInfo{Algorithm: sha256AlgorithmID, Digest: digest},
	})
}

type attribute struct {
	Type   asn1.ObjectIdentifier
	Values asn1.RawValue // SET OF
}

func attr(t asn1.ObjectIdentifier, v any) ([]byte, error) {
	inner, err := asn1.Marshal(v)
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(attribute{Type: t, Values: asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: inner}})
}

func signedData(digest []byte, key crypto.Signer, cert *x509.Certificate) ([]byte, error) {
	idc, err := spcIndirectDataContent(digest)
	if err != nil {
		return nil, err
	}
	// PKCS#7 digests the content octets of the content, without its own
	// tag and length.
	var idcRaw asn1.RawValue
	if _, err := asn1.Unmarshal(idc, &idcRaw); err != nil {
		return nil, err
	}
	md := sha256Sum(idcRaw.Bytes)
	a1, err := attr(oidContentType, oidSpcIndirectData)
	if err != nil {
		return nil, err
	}
	a2, err := attr(oidMessageDigest, md)
	if err != nil {
		return nil, err
	}
	// DER orders the members of a SET OF by their encodings.
	attrs := [][]byte{a1, a2}
	sort.Slice(attrs, func(i, j int) bool { return bytes.Compare(attrs[i], attrs[j]) < 0 })
	attrBytes := bytes.Join(attrs, nil)
	// The signature covers the attributes encoded as a SET (tag 0x31), not
	// with the [0] IMPLICIT tag they carry inside SignerInfo.
	attrSet, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: attrBytes})
	if err != nil {
		return nil, err
	}
	sig, err := key.Sign(rand.Reader, sha256Sum(attrSet), crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}

	type issuerAndSerial struct {
		Issuer asn1.RawValue
		Serial asn1.RawValue
	}
	serial, err := asn1.Marshal(cert.SerialNumber)
	if err != nil {
		return nil, err
	}
	type signerInfo struct {
		Version                   int
		IssuerAndSerial           issuerAndSerial
		DigestAlgorithm           pkix.AlgorithmIdentifier
		AuthenticatedAttributes   asn1.RawValue
		DigestEncryptionAlgorithm pkix.AlgorithmIdentifier
		EncryptedDigest           []byte
	}
	si := signerInfo{
		Version:                   1,
		IssuerAndSerial:           issuerAndSerial{Issuer: asn1.RawValue{FullBytes: cert.RawIssuer}, Serial: asn1.RawValue{FullBytes: serial}},
		DigestAlgorithm:           sha256AlgorithmID,
		AuthenticatedAttributes:   asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: attrBytes},
		DigestEncryptionAlgorithm: rsaEncryptionAlgoID,
		EncryptedDigest:           sig,
	}
	siDER, err := asn1.Marshal(si)
	if err != nil {
		return nil, err
	}
	algDER, err := asn1.Marshal(sha256AlgorithmID)
	if err != nil {
		return nil, err
	}
	type contentInfo struct {
		Type    asn1.ObjectIdentifier
		Content asn1.RawValue
	}
	type signedDataT struct {
		Version          int
		DigestAlgorithms asn1.RawValue
		ContentInfo      contentInfo
		Certificates     asn1.RawValue
		SignerInfos      asn1.RawValue
	}
	sd, err := asn1.Marshal(signedDataT{
		Version:          1,
		DigestAlgorithms: asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: algDER},
		ContentInfo: contentInfo{
			Type:    oidSpcIndirectData,
			Content: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: idc},
		},
		Certificates: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: cert.Raw},
		SignerInfos:  asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: siDER},
	})
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(contentInfo{
		Type:    oidSignedData,
		Content: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: sd},
	})
}

func sha256Sum(b []byte) []byte {
	d := crypto.SHA256.New()
	d.Write(b)
	return d.Sum(nil)
}
