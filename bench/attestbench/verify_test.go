// Package attestbench measures the verifier: full verifications of a
// realistic quote + event log against one bare ECDSA P-256 signature check,
// the floor any quote verifier pays. Run bench/attest.sh for the table.
package attestbench

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"math/big"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport/simulator"

	"github.com/mcinit/mcinit/attest"
	"github.com/mcinit/mcinit/decide"
	"github.com/mcinit/mcinit/measure"
)

type fixture struct {
	ev    *attest.Evidence
	ak    *ecdsa.PublicKey
	nonce []byte
	known []attest.KnownPolicy
}

// newFixture boots a production device on the reference simulator: every
// active bank (SHA-1/256/384/512), six events, one quote.
func newFixture(b *testing.B) fixture {
	b.Helper()
	sim, err := simulator.OpenSimulator()
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	pol := []byte(strings.Repeat("# a realistic 2 KiB policy\n", 80))
	boot := measure.Boot{PolicyRaw: pol, KeyIDs: []string{strings.Repeat("a", 64), strings.Repeat("b", 64), strings.Repeat("c", 64)},
		Threshold: 2, Board: "qemu-x86_64", Identity: `source=dmi arch=amd64 sys_vendor="QEMU" product_name="Standard PC (Q35 + ICH9, 2009)" serial="SN-000042"`,
		Request: decide.RequestNone, Profile: decide.Production, Reason: decide.ReasonDefault,
		Root: measure.Root{Kind: measure.RootVerity, RootHash: strings.Repeat("4f", 32)}}
	r, err := measure.NewRecorder(sim, 13)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range boot.Events() {
		if err := r.Record(e); err != nil {
			b.Fatal(err)
		}
	}
	nonce := []byte("0123456789abcdef0123456789abcdef")
	ev, err := attest.Quote(sim, 13, r.Banks(), nonce)
	if err != nil {
		b.Fatal(err)
	}
	ev.EventLog = r.Log()
	ak, err := attest.ParsePublicPEM(ev.AKPub)
	if err != nil {
		b.Fatal(err)
	}
	known := []attest.KnownPolicy{{Raw: pol, Version: 7, PCR: 13, RootHashes: []string{strings.Repeat("4f", 32)}}}
	if _, err := attest.Verify(ev, known, nonce, ak, attest.Options{AllowUnanchored: true}); err != nil {
		b.Fatal(err)
	}
	return fixture{ev, ak, nonce, known}
}

// BenchmarkVerify is one complete attest.Verify.
func BenchmarkVerify(b *testing.B) {
	f := newFixture(b)
	b.SetBytes(int64(len(f.ev.Quote) + len(f.ev.Signature) + len(f.ev.EventLog)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := attest.Verify(f.ev, f.known, f.nonce, f.ak, attest.Options{AllowUnanchored: true}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBaselineECDSA is the baseline: hash the same quote and check
// its P-256 signature, nothing else.
func BenchmarkBaselineECDSA(b *testing.B) {
	f := newFixture(b)
	sig, err := tpm2.Unmarshal[tpm2.TPMTSignature](f.ev.Signature)
	if err != nil {
		b.Fatal(err)
	}
	ecc, _ := sig.Signature.ECDSA()
	r, s := new(big.Int).SetBytes(ecc.SignatureR.Buffer), new(big.Int).SetBytes(ecc.SignatureS.Buffer)
	b.ResetTimer()
	for b.Loop() {
		d := sha256.Sum256(f.ev.Quote)
		if !ecdsa.Verify(f.ak, d[:], r, s) {
			b.Fatal("signature")
		}
	}
}
