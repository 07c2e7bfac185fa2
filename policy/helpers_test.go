package policy

import (
	"crypto"
	"os"
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

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// minimal is the smallest valid policy.
const minimal = `format = 1
version = 1
boards = ["qemu-x86_64"]
[[production.root]]
root_hash = "0000000000000000000000000000000000000000000000000000000000000000"
data_blocks = 1
`
