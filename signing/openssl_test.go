package signing

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// openssl runs the real openssl binary (an interop peer; Debian package
// "openssl", installed by make deps).
func openssl(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl %v: %v\n%s", args, err, stderr.Bytes())
	}
	return out
}

func write(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOpenSSLInterop: keys and signatures made by openssl verify here, and
// keys made here sign with openssl; key IDs agree with openssl's DER.
func TestOpenSSLInterop(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is required (run make deps): ", err)
	}
	dir := t.TempDir()
	msg := testMsg
	write(t, filepath.Join(dir, "policy.toml"), msg)

	// Ed25519: genpkey, pkey -pubout, pkeyutl -sign -rawin.
	openssl(t, dir, "genpkey", "-algorithm", "ed25519", "-out", "ed.pem")
	openssl(t, dir, "pkey", "-in", "ed.pem", "-pubout", "-out", "ed.pub")
	openssl(t, dir, "pkeyutl", "-sign", "-rawin", "-inkey", "ed.pem", "-in", "policy.toml", "-out", "ed.sig")
	edPub, err := ParsePublicKeyPEM(read(t, filepath.Join(dir, "ed.pub")))
	if err != nil {
		t.Fatal(err)
	}
	der := openssl(t, dir, "pkey", "-in", "ed.pem", "-pubout", "-outform", "DER")
	if KeyID(der) != edPub.ID {
		t.Errorf("key ID %s differs from SHA-256 of openssl's DER %s", edPub.ID, KeyID(der))
	}
	edSig, err := SignatureFromRaw(edPub, msg, read(t, filepath.Join(dir, "ed.sig")))
	if err != nil {
		t.Fatal(err)
	}

	// ECDSA P-256: genpkey EC, dgst -sha256 -sign (DER signature).
	openssl(t, dir, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ec.pem")
	openssl(t, dir, "pkey", "-in", "ec.pem", "-pubout", "-out", "ec.pub")
	openssl(t, dir, "dgst", "-sha256", "-sign", "ec.pem", "-out", "ec.sig", "policy.toml")
	ecPub, err := ParsePublicKeyPEM(read(t, filepath.Join(dir, "ec.pub")))
	if err != nil {
		t.Fatal(err)
	}
	ecSig, err := SignatureFromRaw(ecPub, msg, read(t, filepath.Join(dir, "ec.sig")))
	if err != nil {
		t.Fatal(err)
	}

	ks := mustKeySet(t, 2, edPub, ecPub)
	v, err := ks.Verify(msg, FormatSignatures([]Signature{edSig, ecSig}))
	if err != nil {
		t.Fatal(err)
	}
	if len(v.SignedBy) != 2 {
		t.Errorf("signed by %v", v.SignedBy)
	}
	// A raw signature over other bytes is refused at conversion.
	if _, err := SignatureFromRaw(edPub, append(msg, ' '), edSig.Sig); err == nil {
		t.Error("raw signature over other bytes accepted")
	}

	// Our keys (PKCS#8 PEM) sign with openssl; openssl verifies our signatures.
	for _, alg := range []Alg{AlgEd25519, AlgECDSAP256} {
		priv, pub := testSigner(t, alg)
		pemKey, err := MarshalPrivateKeyPEM(priv)
		if err != nil {
			t.Fatal(err)
		}
		kf := filepath.Join(dir, string(alg)+".key")
		write(t, kf, pemKey)
		write(t, kf+".pub", pubPEM(t, pub))
		var raw []byte
		if alg == AlgEd25519 {
			raw = openssl(t, dir, "pkeyutl", "-sign", "-rawin", "-inkey", kf, "-in", "policy.toml")
		} else {
			raw = openssl(t, dir, "dgst", "-sha256", "-sign", kf, "policy.toml")
		}
		if _, err := SignatureFromRaw(pub, msg, raw); err != nil {
			t.Errorf("%s: openssl signature with our key: %v", alg, err)
		}
		ours, err := Sign(priv, msg)
		if err != nil {
			t.Fatal(err)
		}
		sf := filepath.Join(dir, string(alg)+".oursig")
		write(t, sf, ours.Sig)
		if alg == AlgEd25519 {
			openssl(t, dir, "pkeyutl", "-verify", "-rawin", "-pubin", "-inkey", kf+".pub", "-in", "policy.toml", "-sigfile", sf)
		} else {
			openssl(t, dir, "dgst", "-sha256", "-verify", kf+".pub", "-signature", sf, "policy.toml")
		}
		// SEC1 "EC PRIVATE KEY" (openssl ecparam -genkey) loads too.
		if alg == AlgECDSAP256 {
			sec1 := openssl(t, dir, "ecparam", "-name", "prime256v1", "-genkey")
			if !bytes.Contains(sec1, []byte("EC PRIVATE KEY")) {
				t.Fatalf("openssl ecparam wrote no SEC1 key:\n%s", sec1)
			}
			if _, err := ParsePrivateKeyPEM(sec1); err != nil {
				t.Errorf("SEC1 key: %v", err)
			}
		}
	}
}
