package policy

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/mcinit/mcinit/signing"
)

// Verified is a policy whose signatures met the key set's threshold.
type Verified struct {
	Policy   *Policy
	Digest   [sha256.Size]byte // SHA-256 of the exact signed bytes
	SignedBy []string          // distinct trusted key IDs that signed, sorted
	Unknown  []string          // key IDs of ignored signatures by unknown keys
}

// VerifyPolicy is the single entry point for /init and the host tools: it
// checks the detached signatures over the exact bytes first, and only then
// parses the policy. Errors say why: bad signature from key X, only 1 of 2
// required distinct signatures, or the field that failed to parse.
func VerifyPolicy(policyBytes, sigBytes []byte, ks *signing.KeySet) (*Verified, error) {
	if ks == nil {
		return nil, errors.New("policy: no key set")
	}
	if len(policyBytes) > MaxPolicySize {
		return nil, fmt.Errorf("policy: %d bytes, more than the limit of %d", len(policyBytes), MaxPolicySize)
	}
	c, err := ks.Verify(policyBytes, sigBytes)
	if err != nil {
		return nil, fmt.Errorf("policy signature: %w", err)
	}
	p, err := Parse(policyBytes)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return &Verified{Policy: p, Digest: sha256.Sum256(policyBytes), SignedBy: c.SignedBy, Unknown: c.Unknown}, nil
}
