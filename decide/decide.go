// Package decide turns a verified policy, the board identity, the kernel
// command line and any development grants into a boot profile. It is a pure
// function: no I/O, so /init, `mcinit decide` and `mcinit predict` share it.
package decide

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/mcinit/mcinit/cmdline"
	"github.com/mcinit/mcinit/policy"
)

// Profile is the outcome of a boot decision.
type Profile string

const (
	Production  Profile = "production"
	Development Profile = "development"
)

// Request is what the command line asked for.
type Request string

const (
	RequestNone        Request = "none"        // no mcinit.profile flag
	RequestProduction  Request = "production"  // mcinit.profile=production
	RequestDevelopment Request = "development" // mcinit.profile=development
	RequestMalformed   Request = "malformed"   // any other value: production + warning
)

// Reason is a short, closed-set code for why a profile was chosen; it is
// measured, so the set of values must stay small and enumerable.
type Reason string

const (
	ReasonDefault          Reason = "default"           // nothing requested
	ReasonRequested        Reason = "requested"         // production requested
	ReasonMalformedRequest Reason = "malformed-request" // bad flag value
	ReasonDevBoard         Reason = "dev-allowed-board"
	ReasonDevDevice        Reason = "dev-allowed-device"
	ReasonDevGrant         Reason = "dev-allowed-grant"
	ReasonDevDenied        Reason = "dev-denied" // requested, not allowed: production
)

// Input is everything a boot decision depends on. It holds no I/O: the
// caller reads and verifies, decide only judges.
type Input struct {
	// Policy is the verified policy, or nil when there is none or
	// verification failed; PolicyErr then says why.
	Policy    *policy.Verified
	PolicyErr error
	// Board is the board name matched from boards/ ("" when none matched;
	// "generic-<arch>" for the architecture's fallback board).
	Board string
	// DeviceID is this unit's unique ID (serial number or DMI UUID), "" if unknown.
	DeviceID string
	// Cmdline is the parsed kernel command line; nil means an empty one.
	Cmdline *cmdline.Cmdline
	// Grants are development grants returned by policy.VerifyGrant; others
	// (without SignedBy) are ignored.
	Grants []*policy.Grant
	// Floor is the rollback floor read from the TPM, when FloorKnown.
	// FloorKnown is false when no floor has been recorded (a fresh NV
	// counter) or the policy sets no rollback_nv_index; a TPM that cannot be
	// read is the caller's refusal, not an unknown floor.
	Floor      uint64
	FloorKnown bool
	// Now is the machine's clock (the RTC at boot), zero when unknown. It
	// is untrusted and only voids grants past their not_after.
	Now time.Time
}

// Facts are the measured outcome. Every field is from a closed set, so the
// set of possible encodings, and of their digests, is enumerable.
type Facts struct {
	Request Request
	Profile Profile
	Reason  Reason
}

// Canonical is the measured encoding of the facts, for example
// "request=development profile=production reason=dev-denied".
func (f Facts) Canonical() []byte {
	return fmt.Appendf(nil, "request=%s profile=%s reason=%s", f.Request, f.Profile, f.Reason)
}

// Decision is the outcome of a boot that goes ahead.
type Decision struct {
	Profile  Profile
	Request  Request
	Reason   Reason
	Warnings []string // human lines for the console, in order
	Facts    Facts
	// Grant is the grant that unlocked development (reason
	// dev-allowed-grant): the first matching one of Input.Grants.
	Grant *policy.Grant

	Board         string
	DeviceID      string
	PolicyVersion uint64
	// Debug and Shell are the mcinit.debug and mcinit.shell flags; Shell is
	// only ever true in development, under a policy with rescue_shell.
	Debug, Shell bool
}

// Canonical is Facts.Canonical.
func (d *Decision) Canonical() []byte { return d.Facts.Canonical() }

// Refusal is the error for a boot that must not go ahead. /init prints
// "mcinit: refusing to boot: " + Cause and halts.
type Refusal struct{ Cause string }

func (r *Refusal) Error() string { return "refusing to boot: " + r.Cause }

func refuse(format string, a ...any) error { return &Refusal{Cause: fmt.Sprintf(format, a...)} }

// AllRequests, AllProfiles and AllReasons enumerate the closed sets, for
// predicting every possible measurement.
var (
	AllRequests = []Request{RequestNone, RequestProduction, RequestDevelopment, RequestMalformed}
	AllProfiles = []Profile{Production, Development}
	AllReasons  = []Reason{ReasonDefault, ReasonRequested, ReasonMalformedRequest, ReasonDevBoard, ReasonDevDevice, ReasonDevGrant, ReasonDevDenied}
)

// PossibleFacts lists every Facts value Decide can return.
func PossibleFacts() []Facts {
	return []Facts{
		{RequestNone, Production, ReasonDefault},
		{RequestProduction, Production, ReasonRequested},
		{RequestMalformed, Production, ReasonMalformedRequest},
		{RequestDevelopment, Development, ReasonDevBoard},
		{RequestDevelopment, Development, ReasonDevDevice},
		{RequestDevelopment, Development, ReasonDevGrant},
		{RequestDevelopment, Production, ReasonDevDenied},
	}
}

// Decide applies the rules, in order:
//  1. no verified policy (missing, bad signature, too few distinct
//     signatures, parse error) → refuse; never development;
//  2. policy version below a known rollback floor → refuse (an unrecorded
//     floor while the policy sets rollback_nv_index gives a warning);
//  3. board not covered by the policy → refuse;
//  4. no request or mcinit.profile=production → production; a malformed
//     request → production and a warning;
//  5. development requested and allowed by board, device or a valid grant
//     → development; requested and not allowed → production, a warning, and
//     the denial is measured (reason dev-denied).
func Decide(in Input) (*Decision, error) {
	v := in.Policy
	if v == nil || v.Policy == nil || in.PolicyErr != nil {
		if in.PolicyErr != nil {
			return nil, refuse("no valid policy: %v", in.PolicyErr)
		}
		return nil, refuse("no valid policy")
	}
	p := v.Policy
	d := &Decision{Board: in.Board, DeviceID: in.DeviceID, PolicyVersion: p.Version}
	warn := func(format string, a ...any) { d.Warnings = append(d.Warnings, fmt.Sprintf(format, a...)) }

	switch {
	case in.FloorKnown && p.Version < in.Floor:
		return nil, refuse("policy version %d is below the rollback floor %d", p.Version, in.Floor)
	case !in.FloorKnown && p.Production.RollbackNVIndex != 0:
		// The caller refuses when the TPM cannot be read at all; here the
		// counter exists but holds no floor yet (first boot).
		warn("rollback floor %#x not recorded yet: no version check this boot", p.Production.RollbackNVIndex)
	}

	switch {
	case in.Board == "":
		return nil, refuse("no board file matches this device")
	case !p.Covers(in.Board):
		if policy.IsGenericBoard(in.Board) {
			return nil, refuse("board %s: this device matches no board file and the policy does not allow unknown boards", in.Board)
		}
		return nil, refuse("board %s is not covered by policy version %d", in.Board, p.Version)
	}

	cl := in.Cmdline
	if cl == nil {
		cl = &cmdline.Cmdline{}
	}
	flags := cl.Flags()
	d.Warnings = append(d.Warnings, flags.Warnings...)
	d.Debug = flags.Debug

	switch flags.Profile {
	case cmdline.ProfileNone:
		d.Request, d.Profile, d.Reason = RequestNone, Production, ReasonDefault
	case cmdline.ProfileProduction:
		d.Request, d.Profile, d.Reason = RequestProduction, Production, ReasonRequested
	case cmdline.ProfileDevelopment:
		d.Request = RequestDevelopment
		if r, g, ok := devAllowed(p, in); ok {
			d.Profile, d.Reason, d.Grant = Development, r, g
		} else {
			d.Profile, d.Reason = Production, ReasonDevDenied
			warn("development requested but not allowed for board %s device %s: booting production", in.Board, deviceName(in.DeviceID))
		}
	default:
		// cmdline has already said what was malformed and why.
		d.Request, d.Profile, d.Reason = RequestMalformed, Production, ReasonMalformedRequest
	}

	if flags.Shell {
		switch {
		case d.Profile != Development:
			warn("%s ignored: only honoured in development", cmdline.FlagShell)
		case !p.Development.RescueShell:
			warn("%s ignored: the policy does not set rescue_shell", cmdline.FlagShell)
		default:
			d.Shell = true
		}
	}
	d.Facts = Facts{Request: d.Request, Profile: d.Profile, Reason: d.Reason}
	return d, nil
}

// devAllowed checks board, then device, then grants.
func devAllowed(p *policy.Policy, in Input) (Reason, *policy.Grant, bool) {
	dev := p.Development
	if slices.Contains(dev.AllowBoards, in.Board) {
		return ReasonDevBoard, nil, true
	}
	if in.DeviceID != "" && slices.Contains(dev.AllowDevices, policy.Device{Board: in.Board, DeviceID: in.DeviceID}) {
		return ReasonDevDevice, nil, true
	}
	if dev.AllowGrants {
		for _, g := range in.Grants {
			if g != nil && len(g.SignedBy) > 0 && g.Matches(in.Board, in.DeviceID, p.Version) && g.ValidAt(in.Now) {
				return ReasonDevGrant, g, true
			}
		}
	}
	return "", nil, false
}

func deviceName(id string) string {
	if id == "" {
		return "(unknown)"
	}
	return strconv.Quote(id)
}
