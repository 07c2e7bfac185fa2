package attest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	legacy "github.com/google/go-tpm/legacy/tpm2"
	"github.com/google/go-tpm/legacy/tpm2/credactivation"
	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// Enrollment can bind the AK to the TPM's endorsement key: the server
// encrypts a random secret to the EK for the AK's Name (TPM2_MakeCredential
// in software); only the TPM holding that EK *and* a loaded key with that
// Name (so: our restricted, fixedTPM AK template) releases it with
// TPM2_ActivateCredential. The EK is the TCG default RSA 2048 EK; checking
// its certificate against the manufacturer's CA is the enrolling party's job.

// Challenge file names.
const (
	FileCredBlob  = "cred.bin"   // TPM2B_ID_OBJECT
	FileEncSecret = "secret.enc" // TPM2B_ENCRYPTED_SECRET
)

// Challenge is a credential-activation challenge for one device.
type Challenge struct {
	CredBlob  []byte
	EncSecret []byte
}

// LoadEK creates the TCG default RSA EK primary; the caller flushes it.
func LoadEK(tpm transport.TPM) (*tpm2.CreatePrimaryResponse, crypto.PublicKey, error) {
	rsp, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHEndorsement, InPublic: tpm2.New2B(tpm2.RSAEKTemplate)}.Execute(tpm)
	if err != nil {
		return nil, nil, fmt.Errorf("EK: TPM2_CreatePrimary: %w", err)
	}
	pub, err := rsp.OutPublic.Contents()
	var key crypto.PublicKey
	if err == nil {
		key, err = tpm2.Pub(*pub)
	}
	if err != nil {
		flushHandle(tpm, rsp.ObjectHandle)
		return nil, nil, fmt.Errorf("EK: %w", err)
	}
	return rsp, key, nil
}

// EKPublicPEM returns the EK public key as PKIX PEM.
func EKPublicPEM(tpm transport.TPM) ([]byte, error) {
	rsp, key, err := LoadEK(tpm)
	if err != nil {
		return nil, err
	}
	flushHandle(tpm, rsp.ObjectHandle)
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// AKName is the TPM Name an AK with this public key has: the Name binds
// the whole template (restricted, fixedTPM, ...), not only the key.
func AKName(pub *ecdsa.PublicKey) ([]byte, error) {
	t := AKTemplate()
	ecdh, err := pub.ECDH()
	if err != nil {
		return nil, err
	}
	b := ecdh.Bytes() // 0x04 || X || Y
	n := (len(b) - 1) / 2
	t.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
		X: tpm2.TPM2BECCParameter{Buffer: b[1 : 1+n]},
		Y: tpm2.TPM2BECCParameter{Buffer: b[1+n:]},
	})
	name, err := tpm2.ObjectName(&t)
	if err != nil {
		return nil, err
	}
	return name.Buffer, nil
}

// MakeChallenge encrypts a fresh 32-byte secret to ek for the AK ak. Keep
// the secret; the device must send it back.
func MakeChallenge(ek crypto.PublicKey, ak *ecdsa.PublicKey) (*Challenge, []byte, error) {
	name, err := AKName(ak)
	if err != nil {
		return nil, nil, err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, nil, err
	}
	cred, enc, err := credactivation.Generate(&legacy.HashValue{Alg: legacy.AlgSHA256, Value: name[2:]}, ek, 16, secret)
	if err != nil {
		return nil, nil, fmt.Errorf("make credential: %w", err)
	}
	return &Challenge{CredBlob: cred, EncSecret: enc}, secret, nil
}

// Activate answers a challenge on the device: it loads the AK and the EK
// and runs TPM2_ActivateCredential (EK authorised by PolicySecret on the
// endorsement hierarchy, as the TCG EK template requires).
func Activate(tpm transport.TPM, ch *Challenge) ([]byte, error) {
	cred, err := tpm2.Unmarshal[tpm2.TPM2BIDObject](ch.CredBlob)
	if err != nil {
		return nil, fmt.Errorf("activate: %s: %w", FileCredBlob, err)
	}
	enc, err := tpm2.Unmarshal[tpm2.TPM2BEncryptedSecret](ch.EncSecret)
	if err != nil {
		return nil, fmt.Errorf("activate: %s: %w", FileEncSecret, err)
	}
	ak, err := LoadAK(tpm)
	if err != nil {
		return nil, err
	}
	defer ak.Close()
	ek, _, err := LoadEK(tpm)
	if err != nil {
		return nil, err
	}
	defer flushHandle(tpm, ek.ObjectHandle)
	sess, closeSess, err := tpm2.PolicySession(tpm, tpm2.TPMAlgSHA256, 16)
	if err != nil {
		return nil, fmt.Errorf("activate: policy session: %w", err)
	}
	defer closeSess()
	if _, err := (tpm2.PolicySecret{AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
		PolicySession: sess.Handle()}).Execute(tpm); err != nil {
		return nil, fmt.Errorf("activate: TPM2_PolicySecret: %w", err)
	}
	rsp, err := tpm2.ActivateCredential{
		ActivateHandle: tpm2.AuthHandle{Handle: ak.Handle, Name: ak.Name, Auth: tpm2.PasswordAuth(nil)},
		KeyHandle:      tpm2.AuthHandle{Handle: ek.ObjectHandle, Name: ek.Name, Auth: sess},
		CredentialBlob: *cred,
		Secret:         *enc,
	}.Execute(tpm)
	if err != nil {
		return nil, fmt.Errorf("activate: TPM2_ActivateCredential: %w", err)
	}
	return rsp.CertInfo.Buffer, nil
}

// CheckActivation compares the device's answer with the secret.
func CheckActivation(secret, answer []byte) error {
	if len(secret) == 0 || subtle.ConstantTimeCompare(secret, answer) != 1 {
		return errors.New("credential activation failed: the AK is not in the TPM with this EK")
	}
	return nil
}

func flushHandle(tpm transport.TPM, h tpm2.TPMHandle) {
	_, _ = tpm2.FlushContext{FlushHandle: h}.Execute(tpm)
}
