package attest

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/mcinit/mcinit/decide"
)

// TestWriteFuzzSeeds regenerates the committed seed corpora from a real
// quote of the simulator: MCINIT_WRITE_SEEDS=1 go test -run WriteFuzzSeeds.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("MCINIT_WRITE_SEEDS") == "" {
		t.Skip("set MCINIT_WRITE_SEEDS=1 to regenerate testdata/fuzz seeds")
	}
	nonce := []byte("fuzz-seed-nonce")
	ev, _, _ := device(t, bootFor(decide.Production).Events(), nonce)
	if err := os.WriteFile("testdata/fuzz-ak.pem", ev.AKPub, 0o644); err != nil {
		t.Fatal(err)
	}
	seed := func(target, name string, vals ...[]byte) {
		dir := filepath.Join("testdata", "fuzz", target)
		os.MkdirAll(dir, 0o755)
		var b bytes.Buffer
		b.WriteString("go test fuzz v1\n")
		for _, v := range vals {
			b.WriteString("[]byte(" + goQuote(v) + ")\n")
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	seed("FuzzParseQuote", "real", ev.Quote)
	seed("FuzzParseSignature", "real", ev.Signature)
	seed("FuzzParsePCRs", "real", FormatPCRs(ev.PCRs))
	seed("FuzzVerify", "real", ev.Quote, ev.Signature, ev.EventLog)
}

func goQuote(b []byte) string {
	var s bytes.Buffer
	s.WriteByte('"')
	for _, c := range b {
		s.WriteString(`\x` + hex.EncodeToString([]byte{c}))
	}
	s.WriteByte('"')
	return s.String()
}

func FuzzParseQuote(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = ParseQuote(b)
	})
}

func FuzzParseSignature(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = ParseSignature(b)
	})
}

func FuzzParsePCRs(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		vs, err := ParsePCRs(b)
		if err != nil {
			return
		}
		again, err := ParsePCRs(FormatPCRs(vs))
		if err != nil || len(again) != len(vs) {
			t.Fatalf("FormatPCRs output does not parse back: %v", err)
		}
	})
}

// FuzzVerify feeds mutated evidence to the whole verifier with the seed's
// AK and nonce: it must never panic, and a mutated quote must never pass.
func FuzzVerify(f *testing.F) {
	pemb, err := os.ReadFile("testdata/fuzz-ak.pem")
	if err != nil {
		f.Fatal(err)
	}
	ak, err := ParsePublicPEM(pemb)
	if err != nil {
		f.Fatal(err)
	}
	nonce := []byte("fuzz-seed-nonce")
	f.Fuzz(func(t *testing.T, quote, sig, log []byte) {
		v, err := Verify(&Evidence{Quote: quote, Signature: sig, EventLog: log}, known(), nonce, ak)
		if (err == nil) != v.OK {
			t.Fatalf("error %v but verdict ok=%v", err, v.OK)
		}
	})
}
