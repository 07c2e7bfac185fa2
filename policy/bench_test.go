package policy

import (
	"crypto"
	"crypto/sha256"
	"testing"

	"github.com/mcinit/mcinit/signing"
)

// BenchmarkVerifyPolicy measures what /init pays to verify the sample
// policy. The sha256 case (hashing the same bytes) is the baseline to read
// the others against, as a ratio, since the machine's speed varies.
func BenchmarkVerifyPolicy(b *testing.B) {
	msg := readTestdata(b, "sample-policy.toml")
	b.Run("baseline-sha256", func(b *testing.B) {
		for b.Loop() {
			sha256.Sum256(msg)
		}
	})
	b.Run("parse-only", func(b *testing.B) {
		for b.Loop() {
			if _, err := Parse(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, tc := range []struct {
		name string
		algs []signing.Alg
	}{
		{"ed25519-1of1", []signing.Alg{signing.AlgEd25519}},
		{"ecdsa-p256-1of1", []signing.Alg{signing.AlgECDSAP256}},
		{"ed25519+ecdsa-2of2", []signing.Alg{signing.AlgEd25519, signing.AlgECDSAP256}},
	} {
		var signers []crypto.Signer
		var pubs []*signing.PublicKey
		for _, a := range tc.algs {
			s, p := testSigner(b, a)
			signers, pubs = append(signers, s), append(pubs, p)
		}
		ks := mustKeySet(b, len(pubs), pubs...)
		sig := signAll(b, msg, signers...)
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := VerifyPolicy(msg, sig, ks); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
