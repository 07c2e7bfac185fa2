package attest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	"github.com/google/go-tpm/tpm2/transport/simulator"
)

func TestCredentialActivation(t *testing.T) {
	sim, err := simulator.OpenSimulator()
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	ak, err := LoadAK(sim)
	if err != nil {
		t.Fatal(err)
	}
	name, err := AKName(ak.Public)
	if err != nil || !bytes.Equal(name, ak.Name.Buffer) {
		t.Fatalf("AKName %x, TPM says %x (%v)", name, ak.Name.Buffer, err)
	}
	akPub := ak.Public
	ak.Close()
	ekRsp, ek, err := LoadEK(sim)
	if err != nil {
		t.Fatal(err)
	}
	flushHandle(sim, ekRsp.ObjectHandle)

	ch, secret, err := MakeChallenge(ek, akPub)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Activate(sim, ch)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckActivation(secret, got); err != nil {
		t.Fatal(err)
	}

	// A challenge for a key that is not this TPM's AK cannot be answered.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ch, secret, err = MakeChallenge(ek, &other.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Activate(sim, ch); err == nil && CheckActivation(secret, got) == nil {
		t.Fatal("activated a credential for a foreign AK")
	}
}
