package attest

import (
	"crypto"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// SealParentTemplate is the storage primary that sealed objects live under:
// ECC NIST P-256, AES-128-CFB, restricted decrypt, noDA, owner hierarchy,
// empty unique field. tpm2-tools creates the same key with
//
//	tpm2_createprimary -C o -g sha256 -G ecc256:null:aes128cfb \
//	  -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt' -c parent.ctx
func SealParentTemplate() tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true,
			UserWithAuth: true, NoDA: true, Restricted: true, Decrypt: true,
		},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Symmetric: tpm2.TPMTSymDefObject{
				Algorithm: tpm2.TPMAlgAES,
				KeyBits:   tpm2.NewTPMUSymKeyBits(tpm2.TPMAlgAES, tpm2.TPMKeyBits(128)),
				Mode:      tpm2.NewTPMUSymMode(tpm2.TPMAlgAES, tpm2.TPMAlgCFB),
			},
			Scheme:  tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgNull},
			CurveID: tpm2.TPMECCNistP256,
			KDF:     tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{}),
	}
}

// CreateSealParent creates the storage primary and returns its handle and Name.
func CreateSealParent(tpm transport.TPM) (tpm2.TPMHandle, tpm2.TPM2BName, error) {
	rsp, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHOwner, InPublic: tpm2.New2B(SealParentTemplate())}.Execute(tpm)
	if err != nil {
		return 0, tpm2.TPM2BName{}, fmt.Errorf("seal parent: TPM2_CreatePrimary: %w", err)
	}
	return rsp.ObjectHandle, rsp.Name, nil
}

// Unseal loads a sealed object (TPM2B_PUBLIC and TPM2B_PRIVATE files, as
// tpm2_create -u/-r write them) under the seal parent and unseals it in a
// policy session satisfied by TPM2_PolicyPCR over pcr in the bank h. The
// TPM refuses (TPM_RC_POLICY_FAIL) unless the PCR holds the sealed value.
func Unseal(tpm transport.TPM, pubBytes, privBytes []byte, pcr int, h crypto.Hash) ([]byte, error) {
	pub, err := tpm2.Unmarshal[tpm2.TPM2BPublic](pubBytes)
	if err != nil {
		return nil, fmt.Errorf("unseal: public part: %w", err)
	}
	priv, err := tpm2.Unmarshal[tpm2.TPM2BPrivate](privBytes)
	if err != nil {
		return nil, fmt.Errorf("unseal: private part: %w", err)
	}
	parent, parentName, err := CreateSealParent(tpm)
	if err != nil {
		return nil, err
	}
	defer flushHandle(tpm, parent)
	ld, err := tpm2.Load{
		ParentHandle: tpm2.AuthHandle{Handle: parent, Name: parentName, Auth: tpm2.PasswordAuth(nil)},
		InPrivate:    *priv,
		InPublic:     *pub,
	}.Execute(tpm)
	if err != nil {
		return nil, fmt.Errorf("unseal: TPM2_Load (sealed under another parent?): %w", err)
	}
	defer flushHandle(tpm, ld.ObjectHandle)

	sess, closeSess, err := tpm2.PolicySession(tpm, tpm2.TPMAlgSHA256, 16)
	if err != nil {
		return nil, fmt.Errorf("unseal: policy session: %w", err)
	}
	defer closeSess()
	if _, err := (tpm2.PolicyPCR{PolicySession: sess.Handle(), Pcrs: Selection([]int{pcr}, []crypto.Hash{h})}).Execute(tpm); err != nil {
		return nil, fmt.Errorf("unseal: TPM2_PolicyPCR: %w", err)
	}
	rsp, err := tpm2.Unseal{ItemHandle: tpm2.AuthHandle{Handle: ld.ObjectHandle, Name: ld.Name, Auth: sess}}.Execute(tpm)
	if err != nil {
		return nil, fmt.Errorf("unseal: TPM2_Unseal: %w", err)
	}
	return rsp.OutData.Buffer, nil
}
