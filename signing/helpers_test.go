package signing

import (
	"crypto"
	"testing"
)

// testSigner makes a fresh key of alg and its public half.
func testSigner(t testing.TB, alg Alg) (crypto.Signer, *PublicKey) {
	t.Helper()
	priv, err := GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := PublicKeyFrom(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

// signAll returns a signature file over msg by every signer, in order.
func signAll(t testing.TB, msg []byte, signers ...crypto.Signer) []byte {
	t.Helper()
	var sigs []Signature
	for _, s := range signers {
		sig, err := Sign(s, msg)
		if err != nil {
			t.Fatal(err)
		}
		sigs = append(sigs, sig)
	}
	return FormatSignatures(sigs)
}

func mustKeySet(t testing.TB, k int, keys ...*PublicKey) *KeySet {
	t.Helper()
	ks, err := NewKeySet(k, keys...)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// testMsg stands for any signed document; signing never looks inside.
var testMsg = []byte("format = 1\nversion = 1\n")
