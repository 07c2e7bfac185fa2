package attest

import (
	"bytes"
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
