package attest

import (
	"bytes"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/google/go-tpm/tpm2"
)

// goTPMParseQuote is the reflective decoding ParseQuote replaced, kept as
// the reference: go-tpm's Unmarshal, a re-marshal to find trailing bytes,
// magic and type checks.
func goTPMParseQuote(b []byte) (att *tpm2.TPMSAttest, qi *tpm2.TPMSQuoteInfo, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	att, err := tpm2.Unmarshal[tpm2.TPMSAttest](b)
	if err != nil || !bytes.Equal(tpm2.Marshal(att), b) || att.Magic.Check() != nil || att.Type != tpm2.TPMSTAttestQuote {
		return nil, nil, false
	}
	qi, err = att.Attested.Quote()
	return att, qi, err == nil
}

// FuzzParseQuoteAgrees: whatever ParseQuote accepts, go-tpm decodes to the
// same fields; ParseQuote only adds bounds (sizes, selection count).
func FuzzParseQuoteAgrees(f *testing.F) {
	// Seeds: testdata/fuzz/FuzzParseQuoteAgrees (a PCR 13 quote and a
	// PCRs 0-7, 11, 12, 13 quote of the simulator).
	f.Fuzz(func(t *testing.T, b []byte) {
		att, qi, err := ParseQuote(b)
		ratt, rqi, ok := goTPMParseQuote(b)
		if err != nil {
			return
		}
		if !ok {
			t.Fatalf("ParseQuote accepts what go-tpm rejects: %x", b)
		}
		if !bytes.Equal(att.ExtraData.Buffer, ratt.ExtraData.Buffer) || !bytes.Equal(qi.PCRDigest.Buffer, rqi.PCRDigest.Buffer) ||
			att.ClockInfo != ratt.ClockInfo || att.FirmwareVersion != ratt.FirmwareVersion ||
			!bytes.Equal(att.QualifiedSigner.Buffer, ratt.QualifiedSigner.Buffer) || !sameSelection(qi.PCRSelect, rqi.PCRSelect) {
			t.Fatalf("ParseQuote and go-tpm disagree on %x", b)
		}
	})
}

func sameSelection(a, b tpm2.TPMLPCRSelection) bool {
	if len(a.PCRSelections) != len(b.PCRSelections) {
		return false
	}
	for i := range a.PCRSelections {
		if a.PCRSelections[i].Hash != b.PCRSelections[i].Hash || !bytes.Equal(a.PCRSelections[i].PCRSelect, b.PCRSelections[i].PCRSelect) {
			return false
		}
	}
	return true
}

func TestParseQuoteMatchesGoTPM(t *testing.T) {
	nonce := []byte("parse")
	ev, _, _ := device(t, bootFor("production").Events(), nonce)
	chain, _ := chainDevice(t, fwLog(t, "ovmf-x86_64-uki-sb-on"), bootFor("production").Events(), nonce)
	for i, q := range [][]byte{ev.Quote, chain.Quote} {
		att, qi, err := ParseQuote(q)
		ratt, rqi, ok := goTPMParseQuote(q)
		if err != nil || !ok {
			t.Fatalf("%v %v", err, ok)
		}
		if !reflect.DeepEqual(qi, rqi) || !bytes.Equal(att.ExtraData.Buffer, ratt.ExtraData.Buffer) || att.ClockInfo != ratt.ClockInfo {
			t.Errorf("decodings differ:\n%+v\n%+v", qi, rqi)
		}
		if !bytes.Equal(tpm2.Marshal(att), q) {
			t.Errorf("re-marshal of ParseQuote's result differs")
		}
		if os.Getenv("MCINIT_WRITE_SEEDS") != "" {
			dir := filepath.Join("testdata", "fuzz", "FuzzParseQuoteAgrees")
			os.MkdirAll(dir, 0o755)
			os.WriteFile(filepath.Join(dir, []string{"pcr13", "chain"}[i]), []byte("go test fuzz v1\n[]byte("+goQuote(q)+")\n"), 0o644)
		}
		// Trailing byte, truncation.
		for _, bad := range [][]byte{append(bytes.Clone(q), 0), q[:len(q)-1]} {
			if _, _, err := ParseQuote(bad); err == nil {
				t.Errorf("accepted %x", bad)
			}
		}
	}
}

// goTPMParseSignature is the reflective decoding ParseSignature replaced,
// kept as the reference, with the checks ParseSignature adds: ECDSA with
// SHA-256 and no trailing bytes.
func goTPMParseSignature(b []byte) (r, s []byte, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	sig, err := tpm2.Unmarshal[tpm2.TPMTSignature](b)
	if err != nil || sig.SigAlg != tpm2.TPMAlgECDSA || !bytes.Equal(tpm2.Marshal(sig), b) {
		return nil, nil, false
	}
	ecc, err := sig.Signature.ECDSA()
	if err != nil || ecc.Hash != tpm2.TPMAlgSHA256 {
		return nil, nil, false
	}
	return ecc.SignatureR.Buffer, ecc.SignatureS.Buffer, true
}

// FuzzParseSignatureAgrees: whatever ParseSignature accepts, go-tpm
// decodes to the same r and s; ParseSignature only adds size bounds.
func FuzzParseSignatureAgrees(f *testing.F) {
	// Seed: testdata/fuzz/FuzzParseSignatureAgrees (a simulator quote's).
	f.Fuzz(func(t *testing.T, b []byte) {
		r, s, err := ParseSignature(b)
		rr, rs, ok := goTPMParseSignature(b)
		if err != nil {
			if ok && len(b) <= MaxSigSize && len(rr) <= maxECCParameter && len(rs) <= maxECCParameter {
				t.Fatalf("ParseSignature rejects what go-tpm accepts within bounds: %x: %v", b, err)
			}
			return
		}
		if !ok {
			t.Fatalf("ParseSignature accepts what go-tpm rejects: %x", b)
		}
		if r.Cmp(new(big.Int).SetBytes(rr)) != 0 || s.Cmp(new(big.Int).SetBytes(rs)) != 0 {
			t.Fatalf("ParseSignature and go-tpm disagree on %x", b)
		}
	})
}

func TestParseSignatureMatchesGoTPM(t *testing.T) {
	ev, _, _ := device(t, bootFor("production").Events(), []byte("parse"))
	r, s, err := ParseSignature(ev.Signature)
	rr, rs, ok := goTPMParseSignature(ev.Signature)
	if err != nil || !ok || r.Cmp(new(big.Int).SetBytes(rr)) != 0 || s.Cmp(new(big.Int).SetBytes(rs)) != 0 {
		t.Fatalf("ParseSignature %v, go-tpm ok=%v", err, ok)
	}
	if os.Getenv("MCINIT_WRITE_SEEDS") != "" {
		dir := filepath.Join("testdata", "fuzz", "FuzzParseSignatureAgrees")
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "real"), []byte("go test fuzz v1\n[]byte("+goQuote(ev.Signature)+")\n"), 0o644)
	}
	sig := ev.Signature
	for _, bad := range [][]byte{append(bytes.Clone(sig), 0), sig[:len(sig)-1], sig[:3], {0x00, 0x18, 0x00, 0x0c, 0, 0, 0, 0}} {
		if _, _, err := ParseSignature(bad); err == nil {
			t.Errorf("accepted %x", bad)
		}
	}
}
