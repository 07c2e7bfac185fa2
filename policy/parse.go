package policy

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/mcinit/mcinit/internal/stricttoml"
)

// Limits on individual values; they keep a hostile but validly signed
// document from inflating memory or log lines.
const (
	maxBoards     = 256
	maxRoots      = 16
	maxDevices    = 4096
	maxNameLen    = 64
	maxDeviceID   = 128
	maxPartLabel  = 36 // GPT partition names are 36 UTF-16 code units
	maxSaltBytes  = 256
	nvIndexHandle = 0x01 // TPM_HT_NV_INDEX, the top byte of an NV index
)

var (
	boardNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$`)
	partLabelRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	lowerHexRE  = regexp.MustCompile(`^[0-9a-f]*$`)
)

// hashSizes gives the root hash length in bytes of each accepted algorithm.
var hashSizes = map[string]int{"sha256": 32, "sha512": 64}

// Parse strictly decodes and validates a policy document. Unknown fields,
// duplicate keys, wrong types and out-of-range values are errors that name
// the field. Defaults are filled in: hash_algorithm "sha256", verity_error
// "restart", upper "tmpfs". Parse does not check signatures; see VerifyPolicy.
func Parse(data []byte) (*Policy, error) {
	var p Policy
	md, err := stricttoml.Decode(data, &p, MaxPolicySize)
	if err != nil {
		return nil, err
	}
	if err := p.validate(md); err != nil {
		return nil, err
	}
	return &p, nil
}

func fieldErr(field, format string, a ...any) error {
	return fmt.Errorf("field %s: %s", field, fmt.Sprintf(format, a...))
}

// validBoardName reports whether s is a board name as used in boards/.
func validBoardName(s string) bool {
	return len(s) >= 1 && len(s) <= maxNameLen && boardNameRE.MatchString(s)
}

// validDeviceID accepts printable ASCII without leading or trailing spaces:
// serial numbers and DMI UUIDs, as the identity package normalises them.
func validDeviceID(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > maxDeviceID {
		return fmt.Errorf("%d bytes, more than %d", len(s), maxDeviceID)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return fmt.Errorf("byte %#02x at offset %d is not printable ASCII", s[i], i)
		}
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return errors.New("leading or trailing space")
	}
	return nil
}

func validPartLabel(field, s string) error {
	if len(s) > maxPartLabel || !partLabelRE.MatchString(s) {
		return fieldErr(field, "%q is not a partition label (1-%d of A-Z a-z 0-9 . _ -)", s, maxPartLabel)
	}
	return nil
}

func (p *Policy) validate(md toml.MetaData) error {
	if !md.IsDefined("format") {
		return fieldErr("format", "missing (must be %d)", FormatVersion)
	}
	if p.Format != FormatVersion {
		return fieldErr("format", "%d is not supported (must be %d)", p.Format, FormatVersion)
	}
	if !md.IsDefined("version") {
		return fieldErr("version", "missing")
	}
	if len(p.Boards) == 0 {
		return fieldErr("boards", "missing or empty: the policy must name the boards it covers")
	}
	if len(p.Boards) > maxBoards {
		return fieldErr("boards", "%d entries, more than %d", len(p.Boards), maxBoards)
	}
	covered := map[string]bool{}
	for i, b := range p.Boards {
		if !validBoardName(b) {
			return fieldErr(fmt.Sprintf("boards[%d]", i), "%q is not a board name (1-%d of a-z 0-9 _ -)", b, maxNameLen)
		}
		if IsGenericBoard(b) {
			return fieldErr(fmt.Sprintf("boards[%d]", i), "%q is the fallback for devices no board file matches; it is admitted only by allow_unknown_boards, never by boards", b)
		}
		if covered[b] {
			return fieldErr(fmt.Sprintf("boards[%d]", i), "duplicate board %q", b)
		}
		covered[b] = true
	}
	if md.IsDefined("pcr") {
		if err := CheckPCR(p.PCR); err != nil {
			return fieldErr("pcr", "%v (omit it for the default %d)", err, DefaultPCR)
		}
	}
	if err := p.Production.validate(); err != nil {
		return err
	}
	if md.IsDefined("development", "rescue_timeout") {
		if err := p.Development.validateRescueTimeout(); err != nil {
			return err
		}
	}
	return p.Development.validate(p.coversName(covered))
}

// validateRescueTimeout checks an explicit rescue_timeout: a shell that
// nobody may use, or one that never ends, is a mistake worth a refusal
// to sign.
func (d *Development) validateRescueTimeout() error {
	const f = "development.rescue_timeout"
	if !d.RescueShell {
		return fieldErr(f, "set without rescue_shell = true, where it means nothing")
	}
	if d.RescueTimeout < MinRescueTimeout || d.RescueTimeout > MaxRescueTimeout {
		return fieldErr(f, "%d seconds is outside %d-%d (omit it for the default %d)", d.RescueTimeout, MinRescueTimeout, MaxRescueTimeout, DefaultRescueTimeout)
	}
	return nil
}

// coversName returns the coverage test used for development lists: a board
// must be covered by the policy to be listed there.
func (p *Policy) coversName(covered map[string]bool) func(string) bool {
	return func(b string) bool {
		return covered[b] || (p.AllowUnknownBoards && IsGenericBoard(b))
	}
}

// IsGenericBoard reports whether b is an architecture's fallback board
// (generic-x86_64, generic-aarch64, ...), used for devices no board file
// matches. It has one meaning: an unknown device. The policy admits it only
// with allow_unknown_boards; `boards` cannot name it.
func IsGenericBoard(b string) bool { return strings.HasPrefix(b, "generic-") }

// Covers reports whether the policy admits the board.
func (p *Policy) Covers(board string) bool {
	if board == "" {
		return false
	}
	if IsGenericBoard(board) {
		return p.AllowUnknownBoards
	}
	for _, b := range p.Boards {
		if b == board {
			return true
		}
	}
	return false
}

func (pr *Production) validate() error {
	if len(pr.Roots) == 0 {
		return fieldErr("production.root", "missing: at least one [[production.root]] is required")
	}
	if len(pr.Roots) > maxRoots {
		return fieldErr("production.root", "%d entries, more than %d", len(pr.Roots), maxRoots)
	}
	hashes, names := map[string]bool{}, map[string]bool{}
	for i := range pr.Roots {
		r := &pr.Roots[i]
		f := fmt.Sprintf("production.root[%d]", i)
		if r.Name != "" {
			if len(r.Name) > maxNameLen || validDeviceID(r.Name) != nil {
				return fieldErr(f+".name", "%q is not a label (1-%d printable ASCII)", r.Name, maxNameLen)
			}
			if names[r.Name] {
				return fieldErr(f+".name", "duplicate root name %q", r.Name)
			}
			names[r.Name] = true
		}
		if r.HashAlgorithm == "" {
			r.HashAlgorithm = "sha256"
		}
		size, ok := hashSizes[r.HashAlgorithm]
		if !ok {
			return fieldErr(f+".hash_algorithm", "%q is not supported (sha256 or sha512)", r.HashAlgorithm)
		}
		if r.RootHash == "" {
			return fieldErr(f+".root_hash", "missing")
		}
		if len(r.RootHash) != 2*size || !lowerHexRE.MatchString(r.RootHash) {
			return fieldErr(f+".root_hash", "must be %d lowercase hex digits for %s", 2*size, r.HashAlgorithm)
		}
		if hashes[r.RootHash] {
			return fieldErr(f+".root_hash", "duplicate root hash")
		}
		hashes[r.RootHash] = true
		if r.DataBlocks == 0 {
			return fieldErr(f+".data_blocks", "missing or 0: the signed policy fixes how many data blocks the root maps (the `Data blocks:` of mcinit image or veritysetup format); the superblock is not signed")
		}
		if len(r.Salt)%2 != 0 || len(r.Salt) > 2*maxSaltBytes || !lowerHexRE.MatchString(r.Salt) {
			return fieldErr(f+".salt", "must be lowercase hex of at most %d bytes", maxSaltBytes)
		}
		if (r.DataPartLabel == "") != (r.HashPartLabel == "") {
			return fieldErr(f+".data_partlabel", "data_partlabel and hash_partlabel must be set together")
		}
		if r.DataPartLabel != "" {
			if err := validPartLabel(f+".data_partlabel", r.DataPartLabel); err != nil {
				return err
			}
			if err := validPartLabel(f+".hash_partlabel", r.HashPartLabel); err != nil {
				return err
			}
			if r.DataPartLabel == r.HashPartLabel {
				return fieldErr(f+".hash_partlabel", "must differ from data_partlabel")
			}
		}
	}
	switch pr.VerityError {
	case "":
		pr.VerityError = VerityRestart
	case VerityRestart, VerityPanic, VerityEIO:
	default:
		return fieldErr("production.verity_error", "%q is not one of restart, panic, eio", pr.VerityError)
	}
	if pr.RollbackNVIndex != 0 && pr.RollbackNVIndex>>24 != nvIndexHandle {
		return fieldErr("production.rollback_nv_index", "%#x is not a TPM NV index (0x01000000-0x01ffffff)", pr.RollbackNVIndex)
	}
	return nil
}

func (d *Development) validate(covered func(string) bool) error {
	for i, b := range d.AllowBoards {
		f := fmt.Sprintf("development.allow_boards[%d]", i)
		if !validBoardName(b) {
			return fieldErr(f, "%q is not a board name", b)
		}
		if !covered(b) {
			return fieldErr(f, "board %q is not covered by boards", b)
		}
	}
	if len(d.AllowDevices) > maxDevices {
		return fieldErr("development.allow_devices", "%d entries, more than %d", len(d.AllowDevices), maxDevices)
	}
	seen := map[Device]bool{}
	for i, dev := range d.AllowDevices {
		f := fmt.Sprintf("development.allow_devices[%d]", i)
		if !validBoardName(dev.Board) {
			return fieldErr(f+".board", "%q is not a board name", dev.Board)
		}
		if !covered(dev.Board) {
			return fieldErr(f+".board", "board %q is not covered by boards", dev.Board)
		}
		if err := validDeviceID(dev.DeviceID); err != nil {
			return fieldErr(f+".device_id", "%v", err)
		}
		if seen[dev] {
			return fieldErr(f, "duplicate device %s/%s", dev.Board, dev.DeviceID)
		}
		seen[dev] = true
	}
	switch d.Upper {
	case "":
		d.Upper = UpperTmpfs
		fallthrough
	case UpperTmpfs:
		if d.UpperPartLabel != "" || d.CreateUpper {
			return fieldErr("development.upper_partlabel", "only valid with upper = \"partition\"")
		}
	case UpperPartition:
		if d.UpperPartLabel == "" {
			return fieldErr("development.upper_partlabel", "required with upper = \"partition\"")
		}
		if err := validPartLabel("development.upper_partlabel", d.UpperPartLabel); err != nil {
			return err
		}
	default:
		return fieldErr("development.upper", "%q is not one of tmpfs, partition", d.Upper)
	}
	return nil
}

// Overlay upper layers for the development profile.
const (
	UpperTmpfs     = "tmpfs"
	UpperPartition = "partition"
)

// Allowed reports whether development is possible at all under this policy.
func (d Development) Allowed() bool {
	return len(d.AllowBoards) > 0 || len(d.AllowDevices) > 0 || d.AllowGrants
}
