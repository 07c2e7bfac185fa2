package fwlog

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/mcinit/mcinit/measure"
)

// SecureBoot is the Secure Boot state the firmware measured into PCR 7.
type SecureBoot struct {
	// Enabled: the SecureBoot variable was 1, PK, KEK, db and dbx were
	// measured before PCR 7's separator, and no debug-mode action appears.
	Enabled bool
	// Variables maps each measured configuration variable (SecureBoot, PK,
	// KEK, db, dbx, ...) to the SHA-256 of its data, lowercase hex.
	Variables map[string]string
	// Authorities are the db entries that verified an image
	// (EV_EFI_VARIABLE_AUTHORITY after the separator), in order, as
	// "db:sha256:<hex>" of the certificate (or of the entry's data).
	Authorities []string
}

// separator data: 0 for success; 1 signals a firmware error.
var separatorOK = []byte{0, 0, 0, 0}

// SecureBoot decodes PCR 7. Every configuration, separator and authority
// event must hash to its digests in every bank; the variables must be the
// globally defined ones (by GUID), each at most once.
func (l *Log) SecureBoot() (*SecureBoot, error) {
	sb := &SecureBoot{Variables: map[string]string{}}
	sepSeen := false
	state := -1
	for i, r := range l.Records {
		if r.PCR != PCRSecureBoot || r.Type == EvNoAction {
			continue
		}
		where := fmt.Sprintf("firmware log record %d (PCR 7)", i+1)
		switch r.Type {
		case EvEFIVariableDriverConfig, EvEFIVariableAuthority:
			if !l.dataMatches(r) {
				return nil, fmt.Errorf("%s: digest is not the hash of its variable data", where)
			}
			v, err := ParseVariable(r.Data)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			if r.Type == EvEFIVariableAuthority {
				if !sepSeen {
					return nil, fmt.Errorf("%s: authority before the separator", where)
				}
				sb.Authorities = append(sb.Authorities, authority(v))
				continue
			}
			if sepSeen {
				return nil, fmt.Errorf("%s: configuration variable %s after the separator", where, v.Name)
			}
			name, err := configName(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			if _, dup := sb.Variables[name]; dup {
				return nil, fmt.Errorf("%s: %s measured twice", where, name)
			}
			d := sha256.Sum256(v.Data)
			sb.Variables[name] = hex.EncodeToString(d[:])
			if name == "SecureBoot" {
				if len(v.Data) != 1 || v.Data[0] > 1 {
					return nil, fmt.Errorf("%s: SecureBoot value %x", where, v.Data)
				}
				state = int(v.Data[0])
			}
		case EvSeparator:
			if sepSeen {
				return nil, fmt.Errorf("%s: second separator", where)
			}
			if !bytes.Equal(r.Data, separatorOK) || !l.dataMatches(r) {
				return nil, fmt.Errorf("%s: separator %x signals a firmware error or does not match its digest", where, r.Data)
			}
			sepSeen = true
		case EvEFIAction:
			// "UEFI Debug Mode" and similar actions weaken Secure Boot.
			return nil, fmt.Errorf("%s: EV_EFI_ACTION %q in PCR 7", where, printable(r.Data))
		default:
			return nil, fmt.Errorf("%s: unexpected event type %#x", where, r.Type)
		}
	}
	if !sepSeen {
		return nil, errors.New("firmware log: no separator in PCR 7")
	}
	if state < 0 {
		return nil, errors.New("firmware log: SecureBoot variable not measured")
	}
	sb.Enabled = state == 1
	for _, n := range []string{"PK", "KEK", "db", "dbx"} {
		if _, ok := sb.Variables[n]; !ok {
			sb.Enabled = false
		}
	}
	return sb, nil
}

// configName names a PCR 7 configuration variable, refusing look-alikes
// under another vendor GUID.
func configName(v Variable) (string, error) {
	switch v.Name {
	case "SecureBoot", "PK", "KEK":
		if v.GUID != EFIGlobalVariable {
			return "", fmt.Errorf("variable %s under a non-global GUID", v.Name)
		}
	case "db", "dbx", "dbt", "dbr":
		if v.GUID != ImageSecurityDatabase {
			return "", fmt.Errorf("variable %s under a non-security-database GUID", v.Name)
		}
	default:
		// Other firmware (DeployedMode, AuditMode, vendor keys) is bound by
		// the replay but carries no meaning here.
		return fmt.Sprintf("%s{%x}", v.Name, v.GUID), nil
	}
	return v.Name, nil
}

// authority renders an EV_EFI_VARIABLE_AUTHORITY: the database that held
// the entry and the SHA-256 of the entry's data (for an X.509 entry,
// EFI_SIGNATURE_DATA's owner GUID is 16 bytes, then the certificate DER,
// whose SHA-256 is given). Parsing the certificate is left to whoever
// needs its subject: a verifier compares identities, not names.
func authority(v Variable) string {
	data := v.Data
	if len(data) > 16 && data[16] == 0x30 { // an X.509 SEQUENCE after the owner GUID
		data = data[16:]
	}
	d := sha256.Sum256(data)
	return v.Name + ":sha256:" + hex.EncodeToString(d[:])
}

// App is one EV_EFI_BOOT_SERVICES_APPLICATION in PCR 4. The firmware
// extends the image's Authenticode digest, so Digests are compared with a
// predicted image, never with the event data (UEFI_IMAGE_LOAD_EVENT).
type App struct {
	Record  int                    // 1-based record number
	Digests map[crypto.Hash][]byte // per bank
	// AfterSeparator: loaded after PCR 4's separator, i.e. from a boot option.
	AfterSeparator bool
}

// BootApps lists PCR 4's boot-service applications in order.
func (l *Log) BootApps() ([]App, error) {
	var apps []App
	sep := false
	for i, r := range l.Records {
		if r.PCR != PCRBootApps {
			continue
		}
		switch r.Type {
		case EvSeparator:
			if sep || !bytes.Equal(r.Data, separatorOK) || !l.dataMatches(r) {
				return nil, fmt.Errorf("firmware log record %d (PCR 4): bad or second separator", i+1)
			}
			sep = true
		case EvEFIBootServicesApplication:
			if len(r.Data) < 32 {
				return nil, fmt.Errorf("firmware log record %d (PCR 4): UEFI_IMAGE_LOAD_EVENT shorter than 32 bytes", i+1)
			}
			apps = append(apps, App{Record: i + 1, Digests: l.recordDigests(r), AfterSeparator: sep})
		}
	}
	return apps, nil
}

// StubEvent is one EV_IPL event of the systemd stub: a description
// (UTF-16LE with a NUL terminator) and the digests of what was measured.
type StubEvent struct {
	Record      int
	PCR         int
	Description string
	Digests     map[crypto.Hash][]byte
}

// StubEvents lists the EV_IPL events in pcr (11: UKI sections; 12: command
// line override and credentials). Any other event type there is an error:
// nothing but the stub extends these PCRs before ExitBootServices.
func (l *Log) StubEvents(pcr int) ([]StubEvent, error) {
	var out []StubEvent
	for i, r := range l.Records {
		if int(r.PCR) != pcr || r.Type == EvNoAction {
			continue
		}
		if r.Type != EvIPL {
			return nil, fmt.Errorf("firmware log record %d (PCR %d): event type %#x, not EV_IPL", i+1, pcr, r.Type)
		}
		d, err := stubDescription(r.Data)
		if err != nil {
			return nil, fmt.Errorf("firmware log record %d (PCR %d): %w", i+1, pcr, err)
		}
		out = append(out, StubEvent{Record: i + 1, PCR: pcr, Description: d, Digests: l.recordDigests(r)})
	}
	return out, nil
}

func stubDescription(b []byte) (string, error) {
	if len(b) < 2 || len(b)%2 != 0 || binary.LittleEndian.Uint16(b[len(b)-2:]) != 0 {
		return "", errors.New("EV_IPL description is not NUL-terminated UTF-16")
	}
	return decodeUTF16(b[:len(b)-2])
}

// printable renders event bytes for an error message.
func printable(b []byte) string {
	if len(b) > 64 {
		b = b[:64]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '.'
		}
		return r
	}, string(b))
}

// recordDigests maps r's digests by bank.
func (l *Log) recordDigests(r measure.LogRecord) map[crypto.Hash][]byte {
	m := map[crypto.Hash][]byte{}
	for j, h := range l.Banks {
		m[h] = r.Digests[j]
	}
	return m
}
