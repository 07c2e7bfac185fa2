package policy

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mcinit/mcinit/internal/stricttoml"
	"github.com/mcinit/mcinit/signing"
)

// MaxGrantSize bounds a grant document.
const MaxGrantSize = 4 << 10

// GrantFormat is the only grant format this code accepts.
const GrantFormat = 1

// Grant unlocks the development profile on one device, without re-signing
// the fleet policy. It is only honoured when the policy sets
// development.allow_grants and when it verifies under the policy's key set
// and threshold. A grant and a policy cannot be mistaken for each other:
// each lacks the other's required fields and strict parsing rejects the
// extra ones.
//
//	format = 1
//	board = "qemu-x86_64"
//	device_id = "SN-0042"
//	min_policy_version = 3   # optional
//	max_policy_version = 9   # required: the grant ends with policy 10
//	not_after = "2027-01-31T00:00:00Z"  # optional, checked against the RTC
//
// A grant must end. /init has no clock it can trust (the RTC is set by
// whoever ran the machine last, the development root included), so the
// bound that holds is max_policy_version: the TPM rollback floor only
// rises, and a release with a higher policy version ends the grant.
// not_after only restricts further: a clock past it, or one that was
// never set, makes the grant void; a clock set back cannot be detected.
type Grant struct {
	Format           int     `toml:"format"`
	Board            string  `toml:"board"`
	DeviceID         string  `toml:"device_id"`
	MinPolicyVersion *uint64 `toml:"min_policy_version"`
	MaxPolicyVersion *uint64 `toml:"max_policy_version"`
	NotAfter         string  `toml:"not_after"` // RFC 3339 with an offset; "" = none

	// SignedBy is set by VerifyGrant only; decide ignores grants without it.
	SignedBy []string `toml:"-"`
}

// ParseGrant strictly parses a grant document (no signature check).
func ParseGrant(data []byte) (*Grant, error) {
	var g Grant
	md, err := stricttoml.Decode(data, &g, MaxGrantSize)
	if err != nil {
		return nil, err
	}
	if !md.IsDefined("format") {
		return nil, fieldErr("format", "missing (must be %d)", GrantFormat)
	}
	if g.Format != GrantFormat {
		return nil, fieldErr("format", "%d is not supported (must be %d)", g.Format, GrantFormat)
	}
	if !validBoardName(g.Board) {
		return nil, fieldErr("board", "%q is not a board name (1-%d of a-z 0-9 _ -)", g.Board, maxNameLen)
	}
	if err := validDeviceID(g.DeviceID); err != nil {
		return nil, fieldErr("device_id", "%v", err)
	}
	if g.MaxPolicyVersion == nil {
		return nil, fieldErr("max_policy_version", "missing: a grant must end, and the policy version is the only bound /init can trust (no trusted clock at boot)")
	}
	if g.NotAfter != "" {
		if _, err := time.Parse(time.RFC3339, g.NotAfter); err != nil {
			return nil, fieldErr("not_after", "%.40q is not an RFC 3339 time with an offset (2027-01-31T00:00:00Z)", g.NotAfter)
		}
	}
	if g.MinPolicyVersion != nil && *g.MinPolicyVersion > *g.MaxPolicyVersion {
		return nil, fieldErr("max_policy_version", "%d is below min_policy_version %d", *g.MaxPolicyVersion, *g.MinPolicyVersion)
	}
	return &g, nil
}

// VerifyGrant checks a grant's detached signatures under ks (the same key
// set and threshold as the policy), then parses it.
func VerifyGrant(grantBytes, sigBytes []byte, ks *signing.KeySet) (*Grant, error) {
	if ks == nil {
		return nil, errors.New("grant: no key set")
	}
	if len(grantBytes) > MaxGrantSize {
		return nil, fmt.Errorf("grant: %d bytes, more than the limit of %d", len(grantBytes), MaxGrantSize)
	}
	c, err := ks.Verify(grantBytes, sigBytes)
	if err != nil {
		return nil, fmt.Errorf("grant signature: %w", err)
	}
	g, err := ParseGrant(grantBytes)
	if err != nil {
		return nil, fmt.Errorf("grant: %w", err)
	}
	g.SignedBy = c.SignedBy
	return g, nil
}

// Matches reports whether the grant unlocks this board and device under a
// policy of this version.
func (g *Grant) Matches(board, deviceID string, policyVersion uint64) bool {
	if g == nil || g.Board != board || g.DeviceID != deviceID || deviceID == "" {
		return false
	}
	if g.MinPolicyVersion != nil && policyVersion < *g.MinPolicyVersion {
		return false
	}
	if g.MaxPolicyVersion != nil && policyVersion > *g.MaxPolicyVersion {
		return false
	}
	return true
}

// ClockSetAfter is the earliest time a clock that was ever set can show;
// an earlier one (a board without RTC starts at 1970) is no clock at all.
var ClockSetAfter = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// ValidAt reports whether the grant's not_after allows a boot at now, the
// machine's clock (zero: unknown). A grant without not_after is valid at
// any time; one with it needs a clock that was set and is not past it.
// The clock is untrusted: this only ever voids grants, never extends them.
func (g *Grant) ValidAt(now time.Time) bool {
	if g == nil {
		return false
	}
	if g.NotAfter == "" {
		return true
	}
	t, err := time.Parse(time.RFC3339, g.NotAfter)
	if err != nil || now.Before(ClockSetAfter) {
		return false
	}
	return !now.After(t)
}

// String is a one-line description for logs.
func (g *Grant) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "grant board=%s device=%q", g.Board, g.DeviceID)
	if g.MinPolicyVersion != nil {
		fmt.Fprintf(&b, " min_policy_version=%d", *g.MinPolicyVersion)
	}
	if g.MaxPolicyVersion != nil {
		fmt.Fprintf(&b, " max_policy_version=%d", *g.MaxPolicyVersion)
	}
	if g.NotAfter != "" {
		fmt.Fprintf(&b, " not_after=%s", g.NotAfter)
	}
	return b.String()
}
