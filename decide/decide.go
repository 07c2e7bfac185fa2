// Package decide turns a verified policy, the board identity, the kernel
// command line and any development grants into a boot profile. It is a pure
// function: no I/O, so /init, `mcinit decide` and `mcinit predict` share it.
package decide

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
