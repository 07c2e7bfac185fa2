package signing

import (
	"bytes"
	"testing"
)

// FuzzParseSignatures: the signature format has one spelling, so an
// accepted file formats back to exactly its input bytes.
func FuzzParseSignatures(f *testing.F) {
	f.Add([]byte("ed25519 " + KeyID([]byte("x")) + " " + b64.EncodeToString(make([]byte, 64)) + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sigs, err := ParseSignatures(data)
		if err != nil {
			return
		}
		if got := FormatSignatures(sigs); !bytes.Equal(got, data) {
			t.Fatalf("non-canonical file accepted:\n%q\nformats as\n%q", data, got)
		}
	})
}

// FuzzParsePublicKeyPEM: key files are untrusted input too.
func FuzzParsePublicKeyPEM(f *testing.F) {
	_, pub := testSigner(f, AlgECDSAP256)
	f.Add(pubPEM(f, pub))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParsePublicKeyPEM(data)
		if err != nil {
			return
		}
		if k.Alg != AlgEd25519 && k.Alg != AlgECDSAP256 {
			t.Fatalf("accepted key of alg %q", k.Alg)
		}
	})
}
