package signing

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"testing/fstest"
)

func pubPEM(t testing.TB, k *PublicKey) []byte {
	t.Helper()
	b, err := k.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadKeySet(t *testing.T) {
	_, k1 := testSigner(t, AlgEd25519)
	_, k2 := testSigner(t, AlgECDSAP256)
	good := fstest.MapFS{
		"a.pem":       {Data: pubPEM(t, k1)},
		"b.pem":       {Data: pubPEM(t, k2)},
		"README.md":   {Data: []byte("ignored")},
		"keyset.toml": {Data: []byte("threshold = 2\n")},
	}
	ks, err := LoadKeySet(good)
	if err != nil {
		t.Fatal(err)
	}
	if ks.Threshold != 2 || len(ks.Keys()) != 2 || ks.Key(k1.ID).Name != "a.pem" || ks.Key(k2.ID).Alg != AlgECDSAP256 {
		t.Errorf("got %+v", ks)
	}

	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rsaDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	with := func(edit func(fstest.MapFS)) fstest.MapFS {
		m := fstest.MapFS{}
		for k, v := range good {
			m[k] = v
		}
		edit(m)
		return m
	}
	for _, tc := range []struct {
		name string
		fs   fstest.MapFS
		want string
	}{
		{"k > n", with(func(m fstest.MapFS) { m["keyset.toml"] = &fstest.MapFile{Data: []byte("threshold = 3\n")} }), "threshold 3 is more than the 2 keys"},
		{"k = 0", with(func(m fstest.MapFS) { m["keyset.toml"] = &fstest.MapFile{Data: []byte("threshold = 0\n")} }), "threshold 0 is below 1"},
		{"k < 0", with(func(m fstest.MapFS) { m["keyset.toml"] = &fstest.MapFile{Data: []byte("threshold = -1\n")} }), "threshold: -1 is negative"},
		{"no threshold", with(func(m fstest.MapFS) { m["keyset.toml"] = &fstest.MapFile{Data: []byte("\n")} }), "field threshold: missing"},
		{"unknown field", with(func(m fstest.MapFS) { m["keyset.toml"] = &fstest.MapFile{Data: []byte("threshold = 1\nk = 1\n")} }), "unknown field k"},
		{"no keyset.toml", with(func(m fstest.MapFS) { delete(m, "keyset.toml") }), "keyset.toml"},
		{"duplicate key", with(func(m fstest.MapFS) { m["c.pem"] = &fstest.MapFile{Data: pubPEM(t, k1)} }), "a.pem and c.pem hold the same key " + k1.ID},
		{"rsa", with(func(m fstest.MapFS) {
			m["c.pem"] = &fstest.MapFile{Data: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaDER})}
		}), "c.pem: key type *rsa.PublicKey is not supported"},
		{"p384", with(func(m fstest.MapFS) {
			m["c.pem"] = &fstest.MapFile{Data: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: p384DER})}
		}), "curve P-384"},
		{"two blocks", with(func(m fstest.MapFS) {
			m["c.pem"] = &fstest.MapFile{Data: append(pubPEM(t, k1), pubPEM(t, k2)...)}
		}), "c.pem: data after the PEM block"},
		{"private key", with(func(m fstest.MapFS) {
			m["c.pem"] = &fstest.MapFile{Data: []byte("-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n")}
		}), `want "PUBLIC KEY"`},
		{"garbage", with(func(m fstest.MapFS) { m["c.pem"] = &fstest.MapFile{Data: []byte("hello")} }), "c.pem: no PEM block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadKeySet(tc.fs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseSignaturesStrict(t *testing.T) {
	priv, _ := testSigner(t, AlgEd25519)
	good := string(signAll(t, []byte("m"), priv))
	if _, err := ParseSignatures([]byte(good)); err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSuffix(good, "\n")
	f := strings.Split(line, " ")
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "empty"},
		{"no final newline", line, "newline"},
		{"blank line", good + "\n", "line 2"},
		{"leading blank", "\n" + good, "line 1"},
		{"crlf", line + "\r\n", "line 1"},
		{"double space", f[0] + "  " + f[1] + " " + f[2] + "\n", "3 fields"},
		{"tab", f[0] + "\t" + f[1] + " " + f[2] + "\n", "3 fields"},
		{"trailing space", line + " \n", "3 fields"},
		{"upper hex", f[0] + " " + strings.ToUpper(f[1]) + " " + f[2] + "\n", "lowercase hex"},
		{"short id", f[0] + " " + f[1][1:] + " " + f[2] + "\n", "key ID"},
		{"alg", "ED25519 " + f[1] + " " + f[2] + "\n", `algorithm "ED25519"`},
		{"no padding", f[0] + " " + f[1] + " " + strings.TrimRight(f[2], "=") + "\n", "base64"},
		{"url base64", f[0] + " " + f[1] + " " + strings.NewReplacer("+", "-", "/", "_").Replace(f[2]) + "XX\n", "base64"},
		{"short sig", f[0] + " " + f[1] + " AAAA\n", "ed25519 signature is 3 bytes"},
		{"comment", "# x\n" + good, "line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSignatures([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestKeySetDuplicateEncoding: one Ed25519 key written twice, once with an
// extra NULL at the end of the SubjectPublicKeyInfo SEQUENCE (which Go's
// parser ignores), is one key: the key set refuses it, naming both files,
// so one private key cannot meet threshold 2 (issue 11 item 4).
func TestKeySetDuplicateEncoding(t *testing.T) {
	priv, k := testSigner(t, AlgEd25519)
	canon, err := x509.MarshalPKIXPublicKey(k.key)
	if err != nil {
		t.Fatal(err)
	}
	// 30 2a | 30 05 06 03 2b6570 | 03 21 00 <key>  becomes
	// 30 2c | 30 05 06 03 2b6570 | 03 21 00 <key> | 05 00
	if !bytes.HasPrefix(canon, []byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70}) {
		t.Fatalf("unexpected Ed25519 SPKI % x", canon)
	}
	alt := append(append([]byte{0x30, 0x2c}, canon[2:]...), 0x05, 0x00)
	if _, err := x509.ParsePKIXPublicKey(alt); err != nil {
		// Then the attack is closed by the parser; the test has nothing to show.
		t.Fatalf("Go's parser refuses the re-encoded key: %v", err)
	}
	alk, err := ParsePublicKeyDER(alt)
	if err != nil {
		t.Fatal(err)
	}
	if alk.ID != k.ID {
		t.Errorf("one key, two IDs: %s and %s", k.ID, alk.ID)
	}
	fsys := fstest.MapFS{
		"a.pem":       {Data: pubPEM(t, k)},
		"b.pem":       {Data: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: alt})},
		"keyset.toml": {Data: []byte("threshold = 2\n")},
	}
	if _, err := LoadKeySet(fsys); err == nil || !strings.Contains(err.Error(), "a.pem and b.pem hold the same key") {
		t.Errorf("LoadKeySet: %v, want both files named", err)
	}
	// Even assembled by hand (no file names), the set refuses it, and a
	// document signed once never verifies at threshold 2.
	if _, err := NewKeySet(2, k, alk); err == nil {
		t.Error("NewKeySet accepted one key twice")
	}
	msg := []byte("m")
	sig, _ := Sign(priv, msg)
	twice := FormatSignatures([]Signature{sig, {Alg: sig.Alg, KeyID: alk.ID, Sig: sig.Sig}})
	if ks, err := NewKeySet(1, k); err == nil {
		if c, err := ks.Verify(msg, twice); err == nil && len(c.SignedBy) > 1 {
			t.Errorf("one signature counted %d times", len(c.SignedBy))
		}
	}
}

// TestLoadKeySetNamesSkippedFiles: a directory whose key is release.pub
// (as `mcinit keygen` names it) says why the key does not count.
func TestLoadKeySetNamesSkippedFiles(t *testing.T) {
	fsys := fstest.MapFS{
		"keyset.toml": {Data: []byte("threshold = 1\n")},
		"release.pub": {Data: []byte("-----BEGIN PUBLIC KEY-----\n")},
	}
	_, err := LoadKeySet(fsys)
	if err == nil || !strings.Contains(err.Error(), "skipped release.pub: only *.pem files are keys") {
		t.Errorf("error %v does not name the skipped release.pub", err)
	}
	delete(fsys, "keyset.toml")
	_, err = LoadKeySet(fsys)
	if err == nil || !strings.Contains(err.Error(), "keyset.toml with `threshold = N`") || !strings.Contains(err.Error(), "skipped release.pub") {
		t.Errorf("error %v does not explain keyset.toml", err)
	}
}
