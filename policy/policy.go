// Package policy holds mcinit's signed boot policy: its strictly parsed
// format and validation, the verified-policy type, and per-device
// development grants. Keys, key sets and detached signatures are the
// signing package's; policy only says what the signed bytes mean.
package policy

import (
	"fmt"
	"time"
)

// FormatVersion is the only policy format this code accepts.
const FormatVersion = 1

// DefaultPCR is the PCR mcinit extends when the policy names none.
const DefaultPCR = 13

// The PCRs a policy may name: 8..15 except 11 and 12. Below are the
// firmware's (0-7); above, 16 (debug) and 23 (application) can be reset by
// any process with TPM2_PCR_Reset at locality 0, so a development root
// could reset the PCR and replay production events; 17-22 belong to DRTM
// and refuse extends at locality 0. 8..15 are reset only with the whole TPM
// (TPM2_Startup CLEAR). 11 and 12 hold the systemd stub's measurements of
// the UKI, which the verifier anchors on (attest.FirmwarePCRs).
const (
	MinPCR = 8
	MaxPCR = 15
)

// acceptedPCRs names the PCRs CheckPCR accepts, for its messages.
const acceptedPCRs = "8-10 or 13-15"

// CheckPCR reports why pcr cannot carry mcinit's measurements, or nil.
func CheckPCR(pcr int) error {
	switch {
	case pcr == 11 || pcr == 12:
		return fmt.Errorf("%d holds the UKI's systemd stub measurements, which the verifier checks; use "+acceptedPCRs, pcr)
	case pcr >= MinPCR && pcr <= MaxPCR:
		return nil
	case pcr >= 0 && pcr < MinPCR:
		return fmt.Errorf("%d is a firmware PCR (0-7); use "+acceptedPCRs, pcr)
	case pcr == 16 || pcr == 23:
		return fmt.Errorf("%d can be reset at locality 0 (TPM2_PCR_Reset), so the booted system could reset it and replay production events; use "+acceptedPCRs, pcr)
	case pcr >= 17 && pcr <= 22:
		return fmt.Errorf("%d is a DRTM PCR that refuses extends at locality 0; use "+acceptedPCRs, pcr)
	default:
		return fmt.Errorf("%d is not a PCR (0-23); use "+acceptedPCRs, pcr)
	}
}

// MaxPolicySize bounds the policy file; anything larger is rejected unread.
const MaxPolicySize = 64 << 10

// Policy is a parsed (not necessarily verified) policy document.
// Field names in the TOML file are given in the struct tags.
type Policy struct {
	Format  int      `toml:"format"`  // must be FormatVersion
	Version uint64   `toml:"version"` // monotonic, compared with the rollback floor
	Boards  []string `toml:"boards"`  // board names from boards/ this policy covers
	// AllowUnknownBoards lets a device whose identity matches no board file
	// boot with the architecture's generic board.
	AllowUnknownBoards bool `toml:"allow_unknown_boards"`
	PCR                int  `toml:"pcr"` // 0 means DefaultPCR; valid MinPCR..MaxPCR, see CheckPCR

	Production  Production  `toml:"production"`
	Development Development `toml:"development"`
}

// VerityError is the kernel's reaction to a corrupted block.
type VerityError string

const (
	VerityRestart VerityError = "restart" // restart_on_corruption
	VerityPanic   VerityError = "panic"   // panic_on_corruption
	VerityEIO     VerityError = "eio"     // the read fails with EIO
)

// Production is what a production boot must get.
type Production struct {
	Roots       []Root      `toml:"root"`         // accepted root images (A/B), tried in order
	VerityError VerityError `toml:"verity_error"` // default "restart"
	// LockModules sets kernel.modules_disabled=1 before switch_root. Default true.
	LockModules *bool `toml:"lock_modules"`
	// TPMRequired: refuse to boot when measuring fails. Default true.
	TPMRequired *bool `toml:"tpm_required"`
	// RollbackNVIndex is the TPM NV counter holding the lowest acceptable
	// policy version; 0 disables rollback protection.
	RollbackNVIndex uint32 `toml:"rollback_nv_index"`
}

// Root is one accepted dm-verity root image.
type Root struct {
	Name          string `toml:"name"`           // free label ("A", "B", "2026.11")
	RootHash      string `toml:"root_hash"`      // lowercase hex
	HashAlgorithm string `toml:"hash_algorithm"` // "sha256" (default) or "sha512"
	Salt          string `toml:"salt"`           // optional hex; when set must equal the superblock's
	DataBlocks    uint64 `toml:"data_blocks"`    // required (>= 1); the superblock's must equal it
	// Optional explicit selectors (partition labels) instead of the
	// Discoverable Partitions PARTUUID rule.
	DataPartLabel string `toml:"data_partlabel"`
	HashPartLabel string `toml:"hash_partlabel"`
}

// Development says who may boot the development profile and how.
// Development is "never" unless one of the Allow* fields grants it.
type Development struct {
	AllowBoards  []string `toml:"allow_boards"`  // every device of these boards
	AllowDevices []Device `toml:"allow_devices"` // these individual devices
	AllowGrants  bool     `toml:"allow_grants"`  // devices holding a valid signed grant

	Upper          string `toml:"upper"`           // "tmpfs" (default) or "partition"
	UpperPartLabel string `toml:"upper_partlabel"` // GPT label of the persistent upper
	CreateUpper    bool   `toml:"create_upper"`    // mkfs the upper when it is empty
	// VerifyLower keeps dm-verity on the overlay's lower layer. Default true.
	VerifyLower *bool `toml:"verify_lower"`
	// RescueShell offers a shell on the console in development: after a
	// refusal, and before switch_root when mcinit.shell asks for one.
	RescueShell bool `toml:"rescue_shell"`
	// RescueTimeout bounds each rescue shell, in seconds (0 means
	// DefaultRescueTimeout): an unattended unit halts (after a refusal) or
	// boots on (mcinit.shell) instead of waiting forever.
	RescueTimeout int `toml:"rescue_timeout,omitzero"`
}

// Bounds of development.rescue_timeout, in seconds.
const (
	DefaultRescueTimeout = 300
	MinRescueTimeout     = 10
	MaxRescueTimeout     = 3600
)

// Device names one unit: its board and its unique ID (serial, or DMI UUID).
type Device struct {
	Board    string `toml:"board"`
	DeviceID string `toml:"device_id"`
}

// LockModules reports whether production locks module loading.
func (p Production) LocksModules() bool { return p.LockModules == nil || *p.LockModules }

// RequiresTPM reports whether production refuses to boot without measurements.
func (p Production) RequiresTPM() bool { return p.TPMRequired == nil || *p.TPMRequired }

// RescueWait is how long a rescue shell may run before it is ended.
func (d Development) RescueWait() time.Duration {
	if d.RescueTimeout == 0 {
		return DefaultRescueTimeout * time.Second
	}
	return time.Duration(d.RescueTimeout) * time.Second
}

// VerifiesLower reports whether the development lower layer stays verity-checked.
func (d Development) VerifiesLower() bool { return d.VerifyLower == nil || *d.VerifyLower }

// PCRIndex returns the PCR to extend.
func (p *Policy) PCRIndex() int {
	if p.PCR == 0 {
		return DefaultPCR
	}
	return p.PCR
}

// Normalized returns a copy with every default written out (pcr, the
// booleans, hash_algorithm, verity_error, upper, rescue_timeout with a
// rescue shell), for display and for
// comparing policies; it parses back to an equal policy.
func (p *Policy) Normalized() *Policy {
	n := *p
	n.PCR = p.PCRIndex()
	n.Boards = append([]string(nil), p.Boards...)
	n.Production.Roots = append([]Root(nil), p.Production.Roots...)
	for i := range n.Production.Roots {
		if n.Production.Roots[i].HashAlgorithm == "" {
			n.Production.Roots[i].HashAlgorithm = "sha256"
		}
	}
	if n.Production.VerityError == "" {
		n.Production.VerityError = VerityRestart
	}
	lock, tpm, lower := p.Production.LocksModules(), p.Production.RequiresTPM(), p.Development.VerifiesLower()
	n.Production.LockModules, n.Production.TPMRequired, n.Development.VerifyLower = &lock, &tpm, &lower
	n.Development.AllowBoards = append([]string(nil), p.Development.AllowBoards...)
	n.Development.AllowDevices = append([]Device(nil), p.Development.AllowDevices...)
	if n.Development.Upper == "" {
		n.Development.Upper = UpperTmpfs
	}
	if n.Development.RescueShell && n.Development.RescueTimeout == 0 {
		n.Development.RescueTimeout = DefaultRescueTimeout
	}
	return &n
}
