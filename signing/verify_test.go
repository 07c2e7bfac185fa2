package signing

import (
	"strings"
	"testing"
)

func TestVerifyThreshold(t *testing.T) {
	msg := testMsg
	a, ka := testSigner(t, AlgEd25519)
	b, kb := testSigner(t, AlgECDSAP256)
	c, kc := testSigner(t, AlgEd25519)
	x, kx := testSigner(t, AlgEd25519) // not trusted
	ks := mustKeySet(t, 2, ka, kb, kc)

	for _, tc := range []struct {
		name    string
		sig     []byte
		want    string // "" = success
		signers int
		unknown int
	}{
		{"two distinct", signAll(t, msg, a, b), "", 2, 0},
		{"three distinct", signAll(t, msg, a, b, c), "", 3, 0},
		{"one", signAll(t, msg, a), "only 1 of 2 required distinct signatures (signed by " + ka.ID + ")", 0, 0},
		{"same key twice counts once", signAll(t, msg, a, a), "only 1 of 2", 0, 0},
		{"ecdsa twice counts once", signAll(t, msg, b, b), "only 1 of 2", 0, 0},
		{"unknown ignored, reported", signAll(t, msg, a, x), "ignored 1 signature(s) by unknown key(s) " + kx.ID, 0, 0},
		{"unknown ignored, enough", signAll(t, msg, x, a, c), "", 2, 1},
		{"bad sig from known key", append(signAll(t, msg, a, b), signAll(t, []byte("other"), c)...), "bad signature from key " + kc.ID, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ks.Verify(msg, tc.sig)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(c.SignedBy) != tc.signers || len(c.Unknown) != tc.unknown {
				t.Errorf("signed by %v, unknown %v", c.SignedBy, c.Unknown)
			}
		})
	}

	// A line claiming the wrong algorithm for a trusted key.
	s, _ := Sign(a, msg)
	s.Alg = AlgECDSAP256
	s.Sig = s.Sig[:60]
	if _, err := ks.Verify(msg, FormatSignatures([]Signature{s})); err == nil || !strings.Contains(err.Error(), "is ed25519, the line says ecdsa-p256") {
		t.Errorf("alg mismatch: %v", err)
	}
}
