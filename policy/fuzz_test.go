package policy

import (
	"bytes"
	"crypto/ed25519"
	"testing"

	"github.com/mcinit/mcinit/signing"
)

// FuzzParse: the policy parser never panics, and whatever it accepts
// survives the marshaller's round trip (Parse(Marshal(p)) == p, stable
// bytes), plain and normalised as `mcinit policy show` prints it.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data)
	})
}

// FuzzParseGrant: no panic; an accepted grant is internally consistent
// and survives MarshalGrant.
func FuzzParseGrant(f *testing.F) {
	f.Add([]byte(sampleGrant))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := ParseGrant(data)
		if err != nil {
			return
		}
		if !validBoardName(g.Board) || validDeviceID(g.DeviceID) != nil {
			t.Fatalf("accepted bad grant %+v", g)
		}
		if g.MinPolicyVersion != nil && g.MaxPolicyVersion != nil && *g.MinPolicyVersion > *g.MaxPolicyVersion {
			t.Fatalf("accepted empty range %+v", g)
		}
		grantRoundTrip(t, data)
	})
}

// FuzzVerifyPolicy: verification under a fixed key set never panics and
// never accepts bytes that were not signed (the fuzzer cannot forge).
func FuzzVerifyPolicy(f *testing.F) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	pub, err := signing.PublicKeyFrom(priv.Public())
	if err != nil {
		f.Fatal(err)
	}
	ks, err := signing.NewKeySet(1, pub)
	if err != nil {
		f.Fatal(err)
	}
	sig, err := signing.Sign(priv, []byte(minimal))
	if err != nil {
		f.Fatal(err)
	}
	good := signing.FormatSignatures([]signing.Signature{sig})
	f.Add([]byte(minimal), good)
	f.Fuzz(func(t *testing.T, doc, sigFile []byte) {
		v, err := VerifyPolicy(doc, sigFile, ks)
		if err != nil {
			return
		}
		if !bytes.Equal(doc, []byte(minimal)) {
			t.Fatalf("accepted unsigned policy %q", doc)
		}
		if len(v.SignedBy) != 1 || v.SignedBy[0] != pub.ID {
			t.Fatalf("SignedBy %v", v.SignedBy)
		}
	})
}
