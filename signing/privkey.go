package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// GenerateKey makes a new signing key of the given algorithm.
func GenerateKey(alg Alg) (crypto.Signer, error) {
	switch alg {
	case AlgEd25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case AlgECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	return nil, fmt.Errorf("key type %q is not one of ed25519, ecdsa-p256", alg)
}

// MarshalPrivateKeyPEM encodes a private key as PKCS#8 "PRIVATE KEY" PEM,
// the form `openssl genpkey` writes and `openssl pkeyutl` reads.
func MarshalPrivateKeyPEM(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKeyPEM reads an Ed25519 or ECDSA P-256 private key from PKCS#8
// "PRIVATE KEY" PEM, or SEC1 "EC PRIVATE KEY" PEM (`openssl ecparam -genkey`).
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("key file is %d bytes, more than %d", len(data), maxKeyFile)
	}
	var blk *pem.Block
	for rest := data; ; {
		blk, rest = pem.Decode(rest)
		// openssl ecparam writes an "EC PARAMETERS" block first.
		if blk == nil || blk.Type != "EC PARAMETERS" {
			if blk != nil && strings.TrimSpace(string(rest)) != "" {
				return nil, errors.New("data after the private key PEM block")
			}
			break
		}
	}
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	var k any
	var err error
	switch blk.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("encrypted private keys are not supported: decrypt with `openssl pkey` or sign with openssl and use -raw-signature")
	default:
		return nil, fmt.Errorf("PEM block is %q, want \"PRIVATE KEY\"", blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key type %T cannot sign", k)
	}
	if _, err := PublicKeyFrom(s.Public()); err != nil {
		return nil, err
	}
	return s, nil
}
