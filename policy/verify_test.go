package policy

import (
	"strings"
	"testing"

	"github.com/mcinit/mcinit/signing"
)

// TestVerifyPolicy: the signature is checked first, then the fields; the
// threshold rules themselves are tested in signing.
func TestVerifyPolicy(t *testing.T) {
	msg := []byte(minimal)
	a, ka := testSigner(t, signing.AlgEd25519)
	b, kb := testSigner(t, signing.AlgECDSAP256)
	ks := mustKeySet(t, 2, ka, kb)
	v, err := VerifyPolicy(msg, signAll(t, msg, a, b), ks)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.SignedBy) != 2 || v.Policy.Version != 1 {
		t.Errorf("got %+v", v)
	}
	if _, err := VerifyPolicy(msg, signAll(t, msg, a), ks); err == nil || !strings.Contains(err.Error(), "policy signature: only 1 of 2") {
		t.Errorf("threshold: %v", err)
	}
	bad := []byte("format = 9\n")
	if _, err := VerifyPolicy(bad, signAll(t, bad, a, b), ks); err == nil || !strings.Contains(err.Error(), "policy: field format") {
		t.Errorf("parse after verify: %v", err)
	}
	if _, err := VerifyPolicy(bad, signAll(t, bad, a, b), nil); err == nil {
		t.Error("nil key set accepted")
	}
}

// TestTamperEveryByte changes every byte of a signed policy and of its
// signature file (two keys of each algorithm, threshold 2) in several ways;
// every change must be rejected.
func TestTamperEveryByte(t *testing.T) {
	msg := []byte(minimal)
	a, ka := testSigner(t, signing.AlgEd25519)
	b, kb := testSigner(t, signing.AlgECDSAP256)
	ks := mustKeySet(t, 2, ka, kb)
	sig := signAll(t, msg, a, b)
	if _, err := VerifyPolicy(msg, sig, ks); err != nil {
		t.Fatal(err)
	}
	variants := func(c byte) []byte {
		out := []byte{c ^ 0x01, c ^ 0x80, c ^ 0x20, ' ', '\n', '0', 'a', 'A', '=', 0, 0xff}
		return out
	}
	n := 0
	for _, target := range []string{"policy", "signature"} {
		src := msg
		if target == "signature" {
			src = sig
		}
		for i := range src {
			for _, v := range variants(src[i]) {
				if v == src[i] {
					continue
				}
				m := append([]byte(nil), src...)
				m[i] = v
				p, s := msg, sig
				if target == "policy" {
					p = m
				} else {
					s = m
				}
				n++
				if _, err := VerifyPolicy(p, s, ks); err == nil {
					t.Errorf("%s byte %d changed %#02x -> %#02x: accepted", target, i, src[i], v)
				}
			}
		}
	}
	t.Logf("%d tampered variants of %d+%d bytes, all rejected", n, len(msg), len(sig))
}
