// Package fwlog interprets a UEFI firmware's TCG event log (PC Client
// Platform Firmware Profile), as Linux exposes it in
// /sys/kernel/security/tpm0/binary_bios_measurements: the Secure Boot state
// from PCR 7, the boot applications in PCR 4, the systemd stub's UKI
// sections in PCR 11 and its kernel-parameter events in PCR 12.
//
// The byte format is parsed by measure.ParseFirmwareLog (one parser for
// the crypto-agile format); this package only decodes event contents.
// Every interpreted event's data is checked against its digests in every
// bank, so data that was not what the firmware hashed is rejected. Event
// types the firmware hashes differently (a boot application's digest is
// its Authenticode hash) are compared by digest only.
package fwlog

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"unicode/utf16"

	"github.com/mcinit/mcinit/measure"
)

// Event types (TCG PC Client Platform Firmware Profile, section 10.4.1).
const (
	EvPostCode                   = 0x00000001
	EvNoAction                   = 0x00000003
	EvSeparator                  = 0x00000004
	EvAction                     = 0x00000005
	EvEventTag                   = 0x00000006
	EvSCRTMContents              = 0x00000007
	EvSCRTMVersion               = 0x00000008
	EvIPL                        = 0x0000000D
	EvEFIVariableDriverConfig    = 0x80000001
	EvEFIVariableBoot            = 0x80000002
	EvEFIBootServicesApplication = 0x80000003
	EvEFIBootServicesDriver      = 0x80000004
	EvEFIAction                  = 0x80000007
	EvEFIPlatformFirmwareBlob    = 0x80000008
	EvEFIVariableAuthority       = 0x800000E0
)

// PCRs this package interprets.
const (
	PCRBootApps   = 4  // EV_EFI_BOOT_SERVICES_APPLICATION: Authenticode digests
	PCRSecureBoot = 7  // Secure Boot configuration and authorities
	PCRStub       = 11 // systemd stub: UKI sections
	PCRStubParams = 12 // systemd stub: command line override, credentials
)

// Bounds on what one variable event may claim.
const maxVariableData = 1 << 20

// EFIGlobalVariable is the GUID of SecureBoot, PK, KEK
// (8be4df61-93ca-11d2-aa0d-00e098032b8c), in its on-disk (mixed-endian) form.
var EFIGlobalVariable = [16]byte{0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11, 0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c}

// ImageSecurityDatabase is the GUID of db and dbx
// (d719b2cb-3d3a-4596-a3bc-dad00e67656f).
var ImageSecurityDatabase = [16]byte{0xcb, 0xb2, 0x19, 0xd7, 0x3a, 0x3d, 0x96, 0x45, 0xa3, 0xbc, 0xda, 0xd0, 0x0e, 0x67, 0x65, 0x6f}

// Log is a parsed firmware log.
type Log struct {
	*measure.Log
	// StartupLocality is the locality from a StartupLocality EV_NO_ACTION
	// record (PCR 0 then starts at that value), 0 without one.
	StartupLocality byte
}

// Parse parses a firmware log strictly (see measure.ParseFirmwareLog).
func Parse(b []byte) (*Log, error) {
	ml, err := measure.ParseFirmwareLog(b)
	if err != nil {
		return nil, err
	}
	l := &Log{Log: ml}
	for i, r := range ml.Records {
		if r.Type != EvNoAction {
			continue
		}
		const sig = "StartupLocality\x00"
		if bytes.HasPrefix(r.Data, []byte(sig)) {
			if r.PCR != 0 || len(r.Data) != len(sig)+1 {
				return nil, fmt.Errorf("firmware log record %d: malformed StartupLocality event", i+1)
			}
			if l.StartupLocality != 0 {
				return nil, fmt.Errorf("firmware log record %d: second StartupLocality event", i+1)
			}
			l.StartupLocality = r.Data[len(sig)]
		}
	}
	return l, nil
}

// Replay returns pcr's value in every bank of the log, as the TPM holds it
// after the logged extends.
func (l *Log) Replay(pcr int) map[crypto.Hash][]byte { return l.ReplayPCRs([]int{pcr})[pcr] }

// ReplayPCRs replays several PCRs in one pass, PCR 0 from the startup
// locality.
func (l *Log) ReplayPCRs(pcrs []int) map[int]map[crypto.Hash][]byte {
	return l.Log.ReplayPCRs(pcrs, l.StartupLocality)
}

// Has reports whether the log extends pcr at all.
func (l *Log) Has(pcr int) bool {
	for _, r := range l.Records {
		if int(r.PCR) == pcr && r.Type != EvNoAction {
			return true
		}
	}
	return false
}

// dataMatches reports whether rec's digest is the hash of its data: the
// firmware hashed exactly what the log shows. One collision-resistant bank
// suffices (SHA-256 when the log has it, else every bank): a verifier
// checks every bank's replay against the quote, so that bank's digests are
// the TPM's, and data hashing to them is what was measured.
func (l *Log) dataMatches(rec measure.LogRecord) bool {
	for i, h := range l.Banks {
		if h != crypto.SHA256 && slices.Contains(l.Banks, crypto.SHA256) {
			continue
		}
		d := h.New()
		d.Write(rec.Data)
		if !bytes.Equal(d.Sum(nil), rec.Digests[i]) {
			return false
		}
	}
	return true
}

// Digest returns rec's digest in bank h, or nil.
func (l *Log) Digest(rec measure.LogRecord, h crypto.Hash) []byte {
	for i, b := range l.Banks {
		if b == h {
			return rec.Digests[i]
		}
	}
	return nil
}

// Variable is a decoded UEFI_VARIABLE_DATA event.
type Variable struct {
	GUID [16]byte
	Name string
	Data []byte
}

// ParseVariable decodes UEFI_VARIABLE_DATA: VariableName (GUID),
// UnicodeNameLength and VariableDataLength (u64, little-endian),
// UnicodeName (UTF-16LE, no terminator), VariableData. The lengths must
// account for every byte.
func ParseVariable(b []byte) (Variable, error) {
	var v Variable
	if len(b) < 32 {
		return v, errors.New("UEFI_VARIABLE_DATA shorter than its 32-byte header")
	}
	copy(v.GUID[:], b)
	nameLen := binary.LittleEndian.Uint64(b[16:])
	dataLen := binary.LittleEndian.Uint64(b[24:])
	rest := uint64(len(b) - 32)
	if nameLen > rest/2 || dataLen > maxVariableData || nameLen*2+dataLen != rest {
		return v, fmt.Errorf("UEFI_VARIABLE_DATA: name %d chars and %d data bytes, but %d bytes follow", nameLen, dataLen, rest)
	}
	name, err := decodeUTF16(b[32 : 32+nameLen*2])
	if err != nil {
		return v, fmt.Errorf("UEFI_VARIABLE_DATA name: %w", err)
	}
	v.Name = name
	v.Data = b[32+nameLen*2:]
	return v, nil
}

// decodeUTF16 decodes UTF-16LE without a terminator; unpaired surrogates
// and NUL are errors.
func decodeUTF16(b []byte) (string, error) {
	if len(b)%2 != 0 {
		return "", errors.New("odd UTF-16 length")
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
		if u[i] == 0 {
			return "", errors.New("NUL inside a UTF-16 string")
		}
	}
	r := utf16.Decode(u)
	for _, c := range r {
		if c == 0xFFFD {
			return "", errors.New("invalid UTF-16")
		}
	}
	return string(r), nil
}
