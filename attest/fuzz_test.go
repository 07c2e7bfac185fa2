package attest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
	real := readSeed(f, "testdata/fuzz/FuzzVerify/real")
	f.Fuzz(func(t *testing.T, quote, sig, log []byte) {
		v, err := Verify(&Evidence{Quote: quote, Signature: sig, EventLog: log}, known(), nonce, ak, unanchoredOK)
		if (err == nil) != v.OK {
			t.Fatalf("error %v but verdict ok=%v", err, v.OK)
		}
		// Only the AK's own quote over the real log can pass. The signature
		// may differ (ECDSA's (r, n-s) verifies too); quote and log may not.
		if err == nil && (!bytes.Equal(quote, real[0]) || !bytes.Equal(log, real[2])) {
			t.Fatalf("mutated evidence passed: quote %x log %x", quote, log)
		}
	})
}

// TestVerifyMutatedQuote flips every bit of the seed's real quote and of
// its signature: each mutation must fail, and the unmutated seed must pass
// (else the check would be vacuous: regenerate the seeds).
func TestVerifyMutatedQuote(t *testing.T) {
	pemb, err := os.ReadFile("testdata/fuzz-ak.pem")
	if err != nil {
		t.Fatal(err)
	}
	ak, err := ParsePublicPEM(pemb)
	if err != nil {
		t.Fatal(err)
	}
	nonce := []byte("fuzz-seed-nonce")
	real := readSeed(t, "testdata/fuzz/FuzzVerify/real")
	if v, err := Verify(&Evidence{Quote: real[0], Signature: real[1], EventLog: real[2]}, known(), nonce, ak, unanchoredOK); err != nil || !v.OK {
		t.Fatalf("the real seed does not verify (regenerate with MCINIT_WRITE_SEEDS=1): %v", err)
	}
	for _, part := range []int{0, 1} {
		for i := range real[part] {
			for bit := 0; bit < 8; bit++ {
				m := [][]byte{real[0], real[1], real[2]}
				m[part] = append([]byte(nil), real[part]...)
				m[part][i] ^= 1 << bit
				v, err := Verify(&Evidence{Quote: m[0], Signature: m[1], EventLog: m[2]}, known(), nonce, ak, unanchoredOK)
				if err == nil || v.OK {
					t.Fatalf("part %d byte %d bit %d flipped: the verdict passed", part, i, bit)
				}
			}
		}
	}
}

// readSeed reads the []byte values of a "go test fuzz v1" corpus file.
func readSeed(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n")[1:] {
		q, pre := strings.CutPrefix(line, "[]byte(")
		q, suf := strings.CutSuffix(q, ")")
		if !pre || !suf {
			t.Fatalf("%s: unexpected line %.40q", path, line)
		}
		v, err := strconv.Unquote(q)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, []byte(v))
	}
	if len(out) != 3 {
		t.Fatalf("%s: %d values, want quote, signature, log", path, len(out))
	}
	return out
}

// FuzzParseGolden: a golden file that parses has well-formed values only,
// and survives a round trip.
func FuzzParseGolden(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := ParseGolden(b)
		if err != nil {
			return
		}
		for p := range g.Platform {
			if i, err := strconv.Atoi(p); err != nil || !slices.Contains(PlatformPCRs, i) {
				t.Fatalf("platform PCR %q accepted", p)
			}
		}
		again, err := json.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseGolden(again); err != nil {
			t.Fatalf("a parsed golden file does not parse again: %v", err)
		}
	})
}
