// Package signing owns mcinit's keys and detached signatures: trusted key
// sets with their k-of-n threshold, canonical key IDs, the signature file
// format and its threshold verification, and key generation and private-key
// files. It knows nothing of what is signed (policies, grants).
package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/mcinit/mcinit/internal/boundedfile"
	"github.com/mcinit/mcinit/internal/stricttoml"
)

// Alg names a signature algorithm in a signature file.
type Alg string

const (
	// AlgEd25519 is pure Ed25519 (RFC 8032) over the message bytes, as made
	// by `openssl pkeyutl -sign -rawin`.
	AlgEd25519 Alg = "ed25519"
	// AlgECDSAP256 is ECDSA on P-256 over SHA-256 of the message, the
	// signature ASN.1 DER encoded, as made by `openssl dgst -sha256 -sign`.
	AlgECDSAP256 Alg = "ecdsa-p256"
)

// Limits for key material and key sets.
const (
	maxKeyFile     = 16 << 10
	maxKeys        = 64
	KeySetFile     = "keyset.toml" // the threshold lives here, beside the keys
	maxKeySetToml  = 4 << 10
	keyIDHexLength = 2 * sha256.Size
)

var lowerHexRE = regexp.MustCompile(`^[0-9a-f]*$`)

// PublicKey is one trusted verification key.
type PublicKey struct {
	ID   string // lowercase hex SHA-256 of the canonical PKIX DER
	Alg  Alg
	Name string // file name it was loaded from, for messages; may be empty
	key  crypto.PublicKey
}

// KeyID returns the key ID of a PKIX DER public key.
func KeyID(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// ParsePublicKeyPEM parses exactly one "PUBLIC KEY" PEM block (PKIX) holding
// an Ed25519 or ECDSA P-256 key. Anything but whitespace around the block is
// rejected, so a key file cannot smuggle a second key.
func ParsePublicKeyPEM(data []byte) (*PublicKey, error) {
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("key file is %d bytes, more than %d", len(data), maxKeyFile)
	}
	blk, rest := pem.Decode(data)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, errors.New("data after the PEM block")
	}
	if blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("PEM block is %q, want \"PUBLIC KEY\"", blk.Type)
	}
	if len(blk.Headers) != 0 {
		return nil, errors.New("PEM headers are not allowed")
	}
	return ParsePublicKeyDER(blk.Bytes)
}

// ParsePublicKeyDER parses a PKIX (SubjectPublicKeyInfo) DER public key.
// The key ID is taken over the key's canonical DER (the parsed key marshalled
// again), not over der: Go's parser accepts other encodings of one key (an
// Ed25519 AlgorithmIdentifier with a NULL parameter, say), and one key must
// never count as two signers.
func ParsePublicKeyDER(der []byte) (*PublicKey, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	canon, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	pk := &PublicKey{ID: KeyID(canon), key: k}
	switch k := k.(type) {
	case ed25519.PublicKey:
		pk.Alg = AlgEd25519
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA curve %s is not supported (P-256 only)", k.Curve.Params().Name)
		}
		pk.Alg = AlgECDSAP256
	default:
		return nil, fmt.Errorf("key type %T is not supported (Ed25519 or ECDSA P-256)", k)
	}
	return pk, nil
}

// PublicKeyFrom wraps a Go public key (ed25519.PublicKey or *ecdsa.PublicKey).
func PublicKeyFrom(k crypto.PublicKey) (*PublicKey, error) {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return nil, err
	}
	return ParsePublicKeyDER(der)
}

// MarshalPEM returns the key as a PKIX "PUBLIC KEY" PEM block.
func (k *PublicKey) MarshalPEM() ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(k.key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// verify checks sig over msg under this key. ECDSA is verified over SHA-256
// of msg with an ASN.1 DER signature.
func (k *PublicKey) verify(msg, sig []byte) bool {
	switch pub := k.key.(type) {
	case ed25519.PublicKey:
		return len(sig) == ed25519.SignatureSize && ed25519.Verify(pub, msg, sig)
	case *ecdsa.PublicKey:
		h := sha256.Sum256(msg)
		return ecdsa.VerifyASN1(pub, h[:], sig)
	}
	return false
}

// KeySet is the set of trusted keys and the number k of distinct keys whose
// valid signatures a document needs. The threshold belongs to the key set
// (shipped beside the keys), never to the signed document.
type KeySet struct {
	Threshold int
	keys      map[string]*PublicKey
}

// NewKeySet builds a key set; duplicate keys, k < 1 and k > n are errors.
func NewKeySet(threshold int, keys ...*PublicKey) (*KeySet, error) {
	if len(keys) > maxKeys {
		return nil, fmt.Errorf("key set: %d keys, more than %d", len(keys), maxKeys)
	}
	ks := &KeySet{Threshold: threshold, keys: map[string]*PublicKey{}}
	for _, k := range keys {
		if prev, dup := ks.keys[k.ID]; dup {
			return nil, fmt.Errorf("key set: %s and %s hold the same key %s", name(prev), name(k), k.ID)
		}
		ks.keys[k.ID] = k
	}
	if threshold < 1 {
		return nil, fmt.Errorf("key set: threshold %d is below 1", threshold)
	}
	if threshold > len(ks.keys) {
		return nil, fmt.Errorf("key set: threshold %d is more than the %d keys", threshold, len(ks.keys))
	}
	return ks, nil
}

// name is the key's file name for messages.
func name(k *PublicKey) string {
	if k.Name == "" {
		return "(unnamed)"
	}
	return k.Name
}

// Keys returns the trusted keys sorted by ID.
func (ks *KeySet) Keys() []*PublicKey {
	out := make([]*PublicKey, 0, len(ks.keys))
	for _, k := range ks.keys {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Key returns the trusted key with this ID, or nil.
func (ks *KeySet) Key(id string) *PublicKey { return ks.keys[id] }

type keySetFile struct {
	Threshold int `toml:"threshold"`
}

// LoadKeySet reads a key set from the root of fsys: every *.pem file is one
// trusted public key, and keyset.toml holds `threshold = k`. Files other
// than *.pem and keyset.toml (README.md, ...) are ignored.
func LoadKeySet(fsys fs.FS) (*KeySet, error) {
	raw, err := boundedfile.Read(fsys, KeySetFile, maxKeySetToml)
	if err != nil {
		return nil, fmt.Errorf("key set: %w (a key directory holds the trusted public keys as *.pem files and %s with `threshold = N`)%s", err, KeySetFile, skippedNote(fsys))
	}
	var kf keySetFile
	md, err := stricttoml.Decode(raw, &kf, maxKeySetToml)
	if err != nil {
		return nil, fmt.Errorf("key set: %s: %w", KeySetFile, err)
	}
	if !md.IsDefined("threshold") {
		return nil, fmt.Errorf("key set: %s: field threshold: missing", KeySetFile)
	}
	names, err := fs.Glob(fsys, "*.pem")
	if err != nil {
		return nil, fmt.Errorf("key set: %w", err)
	}
	if len(names) > maxKeys {
		return nil, fmt.Errorf("key set: %d key files, more than %d", len(names), maxKeys)
	}
	keys := make([]*PublicKey, 0, len(names))
	for _, n := range names {
		data, err := boundedfile.Read(fsys, n, maxKeyFile)
		if err != nil {
			return nil, fmt.Errorf("key set: %w", err)
		}
		k, err := ParsePublicKeyPEM(data)
		if err != nil {
			return nil, fmt.Errorf("key set: %s: %w", n, err)
		}
		k.Name = n
		keys = append(keys, k)
	}
	ks, err := NewKeySet(kf.Threshold, keys...)
	if err != nil {
		return nil, fmt.Errorf("%w%s", err, skippedNote(fsys))
	}
	return ks, nil
}

// skippedNote names the files of a key directory that are not read (only
// *.pem and keyset.toml are), for errors: a `cp release.pub keys/` then
// says why its key does not count.
func skippedNote(fsys fs.FS) string {
	ents, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return ""
	}
	var skipped []string
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || n == KeySetFile || strings.HasSuffix(n, ".pem") {
			continue
		}
		skipped = append(skipped, n)
		if len(skipped) == 8 {
			skipped = append(skipped, "…")
			break
		}
	}
	if len(skipped) == 0 {
		return ""
	}
	return fmt.Sprintf("; skipped %s: only *.pem files are keys (rename a .pub key to .pem)", strings.Join(skipped, ", "))
}

// LoadKeySetDir is LoadKeySet on a directory of the host or initramfs.
func LoadKeySetDir(dir string) (*KeySet, error) {
	ks, err := LoadKeySet(os.DirFS(dir))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return ks, nil
}
