package policy

import (
	"crypto"
	"os"
	"testing"

	"github.com/mcinit/mcinit/signing"
)

// testSigner makes a fresh key of alg and its public half.
func testSigner(t testing.TB, alg signing.Alg) (crypto.Signer, *signing.PublicKey) {
	t.Helper()
	priv, err := signing.GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := signing.PublicKeyFrom(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

// signAll returns a signature file over msg by every signer, in order.
func signAll(t testing.TB, msg []byte, signers ...crypto.Signer) []byte {
	t.Helper()
	var sigs []signing.Signature
	for _, s := range signers {
		sig, err := signing.Sign(s, msg)
		if err != nil {
			t.Fatal(err)
		}
		sigs = append(sigs, sig)
	}
	return signing.FormatSignatures(sigs)
}

func mustKeySet(t testing.TB, k int, keys ...*signing.PublicKey) *signing.KeySet {
	t.Helper()
	ks, err := signing.NewKeySet(k, keys...)
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
