package attest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// AKTemplate is the attestation key: an ECC NIST P-256 restricted signing
// key (ECDSA with SHA-256), created as a primary in the endorsement
// hierarchy with an empty unique field. A primary is derived from the
// hierarchy's seed and its template, so the same TPM always gives the same
// key: its public part is enrolled once. The endorsement hierarchy (unlike
// the owner one) leaves the reset and restart counts in quotes unobfuscated.
//
// tpm2-tools equivalent:
//
//	tpm2_createprimary -C e -g sha256 -G ecc256:ecdsa-sha256:null \
//	  -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign' -c ak.ctx
func AKTemplate() tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM:            true,
			FixedParent:         true,
			SensitiveDataOrigin: true,
			UserWithAuth:        true,
			Restricted:          true,
			SignEncrypt:         true,
		},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme: tpm2.TPMTECCScheme{
				Scheme:  tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
			},
			CurveID: tpm2.TPMECCNistP256,
			KDF:     tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{}),
	}
}

// AK is a loaded attestation key. Close flushes it.
type AK struct {
	tpm    transport.TPM
	Handle tpm2.TPMHandle
	Name   tpm2.TPM2BName
	Public *ecdsa.PublicKey
}

// LoadAK creates the AK primary (TPM2_CreatePrimary, endorsement hierarchy).
func LoadAK(tpm transport.TPM) (*AK, error) {
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.TPMRHEndorsement,
		InPublic:      tpm2.New2B(AKTemplate()),
	}.Execute(tpm)
	if err != nil {
		return nil, fmt.Errorf("create AK: TPM2_CreatePrimary: %w", err)
	}
	ak := &AK{tpm: tpm, Handle: rsp.ObjectHandle, Name: rsp.Name}
	pub, err := rsp.OutPublic.Contents()
	if err == nil {
		ak.Public, err = eccPublic(pub)
	}
	if err != nil {
		ak.Close()
		return nil, fmt.Errorf("create AK: %w", err)
	}
	return ak, nil
}

func eccPublic(pub *tpm2.TPMTPublic) (*ecdsa.PublicKey, error) {
	parms, err := pub.Parameters.ECCDetail()
	if err != nil {
		return nil, err
	}
	pt, err := pub.Unique.ECC()
	if err != nil {
		return nil, err
	}
	return tpm2.ECDSAPub(parms, pt)
}

// Close flushes the AK from the TPM.
func (a *AK) Close() error {
	_, err := tpm2.FlushContext{FlushHandle: a.Handle}.Execute(a.tpm)
	return err
}

// MarshalPublicPEM encodes an AK public key as a PKIX "PUBLIC KEY" PEM block,
// the format tpm2_checkquote -u and openssl read.
func MarshalPublicPEM(pub *ecdsa.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePublicPEM decodes an enrolled AK: a P-256 ECDSA PKIX public key.
func ParsePublicPEM(b []byte) (*ecdsa.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, errors.New("AK: no PEM PUBLIC KEY block")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("AK: %w", err)
	}
	ec, ok := k.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("AK: not an ECDSA P-256 key")
	}
	return ec, nil
}
