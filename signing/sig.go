package signing

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Signature file limits.
const (
	MaxSignatureFile = 16 << 10
	maxSignatures    = 64
	maxECDSASigDER   = 72 // SEQUENCE of two 33-byte INTEGERs, with headers
	minECDSASigDER   = 8
)

// Signature is one line of a detached signature file:
//
//	<alg> <key-id> <base64 signature>\n
//
// alg is "ed25519" or "ecdsa-p256", key-id the 64 lowercase hex digits of
// the signing key's ID, and the signature standard padded base64.
type Signature struct {
	Alg   Alg
	KeyID string
	Sig   []byte
}

var b64 = base64.StdEncoding.Strict()

// Line returns the signature's line, newline included.
func (s Signature) Line() string {
	return fmt.Sprintf("%s %s %s\n", s.Alg, s.KeyID, b64.EncodeToString(s.Sig))
}

// FormatSignatures returns the signature file for sigs.
func FormatSignatures(sigs []Signature) []byte {
	var b bytes.Buffer
	for _, s := range sigs {
		b.WriteString(s.Line())
	}
	return b.Bytes()
}

// ParseSignatures parses a detached signature file. The format has exactly
// one spelling for any content: single spaces, lowercase hex, canonical
// base64, every line (and so the file) ending in "\n", no blank lines, no
// comments. Any other byte sequence is an error, so a change to any byte of
// a valid file is rejected or changes what is verified.
func ParseSignatures(data []byte) ([]Signature, error) {
	if len(data) == 0 {
		return nil, errors.New("signature file is empty")
	}
	if len(data) > MaxSignatureFile {
		return nil, fmt.Errorf("signature file is %d bytes, more than %d", len(data), MaxSignatureFile)
	}
	if data[len(data)-1] != '\n' {
		return nil, errors.New("signature file does not end with a newline")
	}
	lines := strings.Split(string(data[:len(data)-1]), "\n")
	if len(lines) > maxSignatures {
		return nil, fmt.Errorf("signature file has %d lines, more than %d", len(lines), maxSignatures)
	}
	sigs := make([]Signature, 0, len(lines))
	for i, l := range lines {
		s, err := parseSignatureLine(l)
		if err != nil {
			return nil, fmt.Errorf("signature file line %d: %w", i+1, err)
		}
		sigs = append(sigs, s)
	}
	return sigs, nil
}

func parseSignatureLine(l string) (Signature, error) {
	f := strings.Split(l, " ")
	if len(f) != 3 {
		return Signature{}, fmt.Errorf("want 3 fields separated by single spaces, got %d", len(f))
	}
	s := Signature{Alg: Alg(f[0]), KeyID: f[1]}
	if len(s.KeyID) != keyIDHexLength || !lowerHexRE.MatchString(s.KeyID) {
		return Signature{}, fmt.Errorf("key ID must be %d lowercase hex digits", keyIDHexLength)
	}
	sig, err := b64.DecodeString(f[2])
	// The decoder skips '\r' and '\n'; re-encoding catches those and any
	// other non-canonical spelling.
	if err != nil || b64.EncodeToString(sig) != f[2] {
		return Signature{}, errors.New("signature is not canonical standard base64")
	}
	s.Sig = sig
	switch s.Alg {
	case AlgEd25519:
		if len(sig) != ed25519.SignatureSize {
			return Signature{}, fmt.Errorf("ed25519 signature is %d bytes, want %d", len(sig), ed25519.SignatureSize)
		}
	case AlgECDSAP256:
		if len(sig) < minECDSASigDER || len(sig) > maxECDSASigDER {
			return Signature{}, fmt.Errorf("ecdsa-p256 signature is %d bytes, want %d..%d", len(sig), minECDSASigDER, maxECDSASigDER)
		}
	default:
		return Signature{}, fmt.Errorf("algorithm %q is not one of ed25519, ecdsa-p256", f[0])
	}
	return s, nil
}

// Sign signs msg with an Ed25519 or ECDSA P-256 private key and returns the
// signature line's content.
func Sign(priv crypto.Signer, msg []byte) (Signature, error) {
	pub, err := PublicKeyFrom(priv.Public())
	if err != nil {
		return Signature{}, err
	}
	var sig []byte
	switch k := priv.(type) {
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, msg)
	case *ecdsa.PrivateKey:
		h := sha256.Sum256(msg)
		sig, err = ecdsa.SignASN1(rand.Reader, k, h[:])
	default:
		// An opaque signer (HSM, TPM): Ed25519 signs the message itself,
		// ECDSA the SHA-256 digest.
		if pub.Alg == AlgEd25519 {
			sig, err = priv.Sign(rand.Reader, msg, crypto.Hash(0))
		} else {
			h := sha256.Sum256(msg)
			sig, err = priv.Sign(rand.Reader, h[:], crypto.SHA256)
		}
	}
	if err != nil {
		return Signature{}, fmt.Errorf("signing: %w", err)
	}
	return SignatureFromRaw(pub, msg, sig)
}

// SignatureFromRaw turns a raw signature made elsewhere (for example by
// `openssl pkeyutl -sign -rawin` for Ed25519, or `openssl dgst -sha256
// -sign` for ECDSA P-256) into a Signature, after checking it verifies.
func SignatureFromRaw(pub *PublicKey, msg, raw []byte) (Signature, error) {
	s := Signature{Alg: pub.Alg, KeyID: pub.ID, Sig: raw}
	if _, err := parseSignatureLine(strings.TrimSuffix(s.Line(), "\n")); err != nil {
		return Signature{}, err
	}
	if !pub.verify(msg, raw) {
		return Signature{}, fmt.Errorf("the %s signature does not verify under key %s", pub.Alg, pub.ID)
	}
	return s, nil
}

// Check is the outcome of verifying a detached signature file.
type Check struct {
	SignedBy []string // distinct trusted key IDs with a valid signature, sorted
	Unknown  []string // key IDs not in the key set (ignored), sorted
}

// Verify checks a detached signature file over msg: it needs valid
// signatures from at least ks.Threshold distinct trusted keys. Signatures
// by keys outside the set are ignored and reported; repeated signatures by
// one key count once. A signature by a trusted key that does not verify is
// an error even when enough others do: it means tampering or a broken
// signer, and a policy must not boot on "mostly valid".
func (ks *KeySet) Verify(msg, sigFile []byte) (*Check, error) {
	sigs, err := ParseSignatures(sigFile)
	if err != nil {
		return nil, err
	}
	signed, unknown := map[string]bool{}, map[string]bool{}
	for i, s := range sigs {
		k := ks.Key(s.KeyID)
		if k == nil {
			unknown[s.KeyID] = true
			continue
		}
		if k.Alg != s.Alg {
			return nil, fmt.Errorf("signature file line %d: key %s is %s, the line says %s", i+1, s.KeyID, k.Alg, s.Alg)
		}
		if !k.verify(msg, s.Sig) {
			return nil, fmt.Errorf("bad signature from key %s%s", s.KeyID, keyName(k))
		}
		signed[s.KeyID] = true
	}
	c := &Check{SignedBy: sortedKeys(signed), Unknown: sortedKeys(unknown)}
	if len(c.SignedBy) < ks.Threshold {
		msg := fmt.Sprintf("only %d of %d required distinct signatures", len(c.SignedBy), ks.Threshold)
		if len(c.SignedBy) > 0 {
			msg += " (signed by " + strings.Join(c.SignedBy, ", ") + ")"
		}
		if len(c.Unknown) > 0 {
			msg += fmt.Sprintf("; ignored %d signature(s) by unknown key(s) %s", len(c.Unknown), strings.Join(c.Unknown, ", "))
		}
		return nil, errors.New(msg)
	}
	return c, nil
}

func keyName(k *PublicKey) string {
	if k.Name == "" {
		return ""
	}
	return " (" + k.Name + ")"
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
