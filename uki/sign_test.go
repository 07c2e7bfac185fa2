package uki

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// newKey makes an RSA key and self-signed certificate with openssl.
func newKey(t *testing.T, dir, name string) (key, cert string) {
	t.Helper()
	openssl := need(t, "openssl", "openssl")
	key = filepath.Join(dir, name+".key")
	cert = filepath.Join(dir, name+".pem")
	o, err := exec.Command(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
		"-days", "3650", "-subj", "/CN=mcinit test "+name).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl req: %v\n%s", err, o)
	}
	return key, cert
}

func signFile(t *testing.T, img []byte, key, cert string) []byte {
	t.Helper()
	k, c, err := LoadSigner(readFile(t, key), readFile(t, cert))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Sign(img, k, c)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sbverify(t *testing.T, img []byte, cert string) (string, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img.efi")
	if err := os.WriteFile(p, img, 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := exec.Command(need(t, "sbverify", "sbsigntool"), "--cert", cert, p).CombinedOutput()
	return string(o), err
}

func TestSignSbverifyAccepts(t *testing.T) {
	dir := t.TempDir()
	key, cert := newKey(t, dir, "a")
	_, other := newKey(t, dir, "b")
	uki, err := Build(testInputs(t))
	if err != nil {
		t.Fatal(err)
	}
	signed := signFile(t, uki, key, cert)
	if o, err := sbverify(t, signed, cert); err != nil || !strings.Contains(o, "Signature verification OK") {
		t.Fatalf("sbverify refused our signature: %v\n%s", err, o)
	}
	if !bytes.Equal(signed, signFile(t, uki, key, cert)) {
		t.Error("signing twice gives different images")
	}
	// The signature binds the image digest: it is the same before and after.
	d1, _ := AuthenticodeDigest(uki, crypto.SHA256)
	d2, _ := AuthenticodeDigest(signed, crypto.SHA256)
	if !bytes.Equal(d1, d2) {
		t.Error("signing changed the Authenticode digest")
	}
	f, err := Parse(signed)
	if err != nil || !f.Signed() || f.Checksum() != f.StoredChecksum() {
		t.Fatalf("signed image: %v signed=%v checksum ok=%v", err, f != nil && f.Signed(), f != nil && f.Checksum() == f.StoredChecksum())
	}
	if _, err := Sign(signed, nil, nil); err == nil {
		t.Error("signing a signed image: no error")
	}

	// Must fail: another certificate, a changed byte in a section.
	if o, err := sbverify(t, signed, other); err == nil {
		t.Errorf("sbverify accepted the signature with another cert:\n%s", o)
	}
	tampered := bytes.Clone(signed)
	s, _ := f.Section(".cmdline")
	tampered[s.PointerToRaw] ^= 1
	if o, err := sbverify(t, tampered, cert); err == nil {
		t.Errorf("sbverify accepted a tampered image:\n%s", o)
	}
}

// Debian's OVMF test key (its passphrase is "snakeoil", per the package's
// README.Debian): what the firmware e2e tests sign with.
func TestSignSnakeoil(t *testing.T) {
	need(t, snakeoilKey, "ovmf")
	dir := t.TempDir()
	plain := filepath.Join(dir, "snakeoil.key")
	if o, err := exec.Command(need(t, "openssl", "openssl"), "pkey", "-in", snakeoilKey, "-passin", "pass:snakeoil", "-out", plain).CombinedOutput(); err != nil {
		t.Fatalf("openssl pkey: %v\n%s", err, o)
	}
	if _, _, err := LoadSigner(readFile(t, snakeoilKey), readFile(t, snakeoilPEM)); err == nil || !strings.Contains(err.Error(), "encrypted") {
		t.Errorf("encrypted key: %v", err)
	}
	uki, err := Build(testInputs(t))
	if err != nil {
		t.Fatal(err)
	}
	signed := signFile(t, uki, plain, snakeoilPEM)
	if o, err := sbverify(t, signed, snakeoilPEM); err != nil || !strings.Contains(o, "Signature verification OK") {
		t.Fatalf("sbverify: %v\n%s", err, o)
	}
}

var digestRE = regexp.MustCompile(`Calculated message digest\s*:\s*([0-9A-Fa-f]+)`)

// osslsigncode is an independent Authenticode implementation: it signs with
// each hash and prints the digest it computes; ours must agree, for the
// raw stub (which has trailing data: its COFF symbol table) and for a UKI.
func TestAuthenticodeDigestMatchesOsslsigncode(t *testing.T) {
	tool := need(t, "osslsigncode", "osslsigncode")
	dir := t.TempDir()
	key, cert := newKey(t, dir, "o")
	uki, err := Build(testInputs(t))
	if err != nil {
		t.Fatal(err)
	}
	imgs := map[string][]byte{"stub": readFile(t, hostStubX64), "uki": uki}
	for name, img := range imgs {
		in := filepath.Join(dir, name+".efi")
		os.WriteFile(in, img, 0o644)
		for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
			alg := strings.ToLower(strings.ReplaceAll(h.String(), "-", ""))
			out := filepath.Join(dir, name+"-"+alg+".efi")
			if o, err := exec.Command(tool, "sign", "-certs", cert, "-key", key, "-h", alg, "-in", in, "-out", out).CombinedOutput(); err != nil {
				t.Fatalf("osslsigncode sign: %v\n%s", err, o)
			}
			o, _ := exec.Command(tool, "verify", "-in", out).CombinedOutput()
			m := digestRE.FindStringSubmatch(string(o))
			if m == nil {
				t.Fatalf("no digest in osslsigncode output:\n%s", o)
			}
			got, err := AuthenticodeDigest(readFile(t, out), h)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.EqualFold(hex.EncodeToString(got), m[1]) {
				t.Errorf("%s %s: digest %x, osslsigncode %s", name, alg, got, m[1])
			}
		}
	}
}
