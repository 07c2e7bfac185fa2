package measure

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Tag is an mcinit taggedEventID inside an EV_EVENT_TAG record. mcinit owns
// the range 0x4D430000-0x4D43FFFF ("MC" in the high half); IDs are never
// reused with a different meaning.
type Tag uint32

const (
	TagPolicy    Tag = 0x4D430001 // SHA-256 of the raw signed policy file
	TagKeySet    Tag = 0x4D430002 // trusted key IDs and threshold
	TagBoard     Tag = 0x4D430003 // board name and identity
	TagDecision  Tag = 0x4D430004 // request, profile, reason
	TagRoot      Tag = 0x4D430005 // the root that was set up
	TagFailure   Tag = 0x4D430006 // refusal cause
	TagSeparator Tag = 0x4D430007 // leave-initramfs, always last
	TagGrant     Tag = 0x4D430008 // the grant that unlocked development, and where it was read
)

// String names the tag for logs and verdicts.
func (t Tag) String() string {
	switch t {
	case TagPolicy:
		return "policy"
	case TagKeySet:
		return "keyset"
	case TagBoard:
		return "board"
	case TagDecision:
		return "decision"
	case TagRoot:
		return "root"
	case TagFailure:
		return "failure"
	case TagSeparator:
		return "separator"
	case TagGrant:
		return "grant"
	}
	return fmt.Sprintf("tag-%#08x", uint32(t))
}

// MaxEventData bounds the data of one mcinit event. The largest one /init
// produces is a key set of 64 keys (about 4.5 KiB).
const MaxEventData = 8192

// maxCause bounds the free-text cause of a failure event before escaping.
// It is the only value ever cut: every other value is measured whole.
const maxCause = 512

// MaxIdentity is the longest escaped identity the board event carries
// verbatim; a longer one is measured as its SHA-256 (identity-sha256), so
// no part of it is ever left out.
const MaxIdentity = 2048

// SeparatorData is the data of the final event.
const SeparatorData = "leave-initramfs"

// Event is one mcinit measurement: a tag and its canonical data.
type Event struct {
	Tag  Tag
	Data []byte
}

// TaggedEvent is the TCG_PCClientTaggedEvent structure carried in the event
// field of the log record: taggedEventID u32, taggedEventDataSize u32 (both
// little-endian), data. Its hash, per bank, is what is extended.
func (e Event) TaggedEvent() []byte {
	b := make([]byte, 8, 8+len(e.Data))
	putLE32(b[0:], uint32(e.Tag))
	putLE32(b[4:], uint32(len(e.Data)))
	return append(b, e.Data...)
}

// String is a one-line rendering for humans.
func (e Event) String() string {
	return e.Tag.String() + ": " + strings.ReplaceAll(strings.TrimSuffix(string(e.Data), "\n"), "\n", " ")
}

// field is one key=value line.
type field struct{ k, v string }

// encode renders fields as canonical `key=value\n` lines.
func encode(tag Tag, fs ...field) Event {
	var b bytes.Buffer
	for _, f := range fs {
		b.WriteString(f.k)
		b.WriteByte('=')
		b.WriteString(escape(f.v))
		b.WriteByte('\n')
	}
	return Event{Tag: tag, Data: b.Bytes()}
}

// escape makes a value printable and newline-free: bytes outside 0x20-0x7E
// and '%' become %XX (uppercase hex). Every encoder goes through here, so
// the result stays canonical. It never cuts a value.
func escape(s string) string {
	i := 0
	for i < len(s) && !needsEscape(s[i]) {
		i++
	}
	if i == len(s) {
		return s // the common case: nothing to escape, nothing to copy
	}
	const hexDigits = "0123456789ABCDEF"
	b := make([]byte, i, len(s)+16)
	copy(b, s[:i])
	for ; i < len(s); i++ {
		c := s[i]
		if needsEscape(c) {
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&0xf])
			continue
		}
		b = append(b, c)
	}
	return string(b)
}

func needsEscape(c byte) bool { return c < 0x20 || c > 0x7e || c == '%' }

func unescape(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("truncated escape at byte %d", i)
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("bad escape at byte %d", i)
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

// PolicyEvent measures the raw signed policy bytes before they are parsed.
func PolicyEvent(raw []byte) Event {
	d := sha256.Sum256(raw)
	return encode(TagPolicy, field{"policy-sha256", hex.EncodeToString(d[:])})
}

// KeySetEvent measures the trusted keys (IDs = lowercase hex SHA-256 of the
// PKIX DER) and the signature threshold. IDs are sorted and de-duplicated,
// so the event does not depend on directory order.
func KeySetEvent(keyIDs []string, threshold int) Event {
	ids := make([]string, 0, len(keyIDs))
	seen := map[string]bool{}
	for _, id := range keyIDs {
		id = strings.ToLower(id)
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	fs := []field{{"threshold", strconv.Itoa(threshold)}}
	for _, id := range ids {
		fs = append(fs, field{"key", id})
	}
	return encode(TagKeySet, fs...)
}

// BoardSource is where an imported board's configuration came from: the
// nixos-hardware commit and profile path of its provenance. It is zero for
// a hand-written board.
type BoardSource struct {
	Commit  string
	Profile string
}

// BoardEvent measures the matched board name and the identity's canonical
// string, whole: verbatim when its escaped form fits MaxIdentity, otherwise
// as identity-sha256, the SHA-256 of the whole string. Either way two
// identities that differ anywhere give different events (never a cut).
func BoardEvent(board, identity string) Event {
	return BoardEventFrom(board, identity, BoardSource{})
}

// BoardEventFrom is BoardEvent for a board with provenance: the event also
// carries nixos-hardware-commit and nixos-hardware-profile, so a verifier
// knows where the board's configuration came from.
func BoardEventFrom(board, identity string, src BoardSource) Event {
	fs := []field{{"board", board}, {"identity", identity}}
	if len(escape(identity)) > MaxIdentity {
		d := sha256.Sum256([]byte(identity))
		fs[1] = field{"identity-sha256", hex.EncodeToString(d[:])}
	}
	if src != (BoardSource{}) {
		fs = append(fs, field{"nixos-hardware-commit", src.Commit}, field{"nixos-hardware-profile", src.Profile})
	}
	return encode(TagBoard, fs...)
}

// BoardFields decodes a board event: the board name, and either the whole
// identity or (for an identity too long to carry) the lowercase hex SHA-256
// of it. It accepts exactly what BoardEvent and BoardEventFrom produce; see
// BoardEventSource for the provenance.
func BoardFields(data []byte) (board, identity, identitySHA256 string, err error) {
	b, err := ParseBoardEvent(data)
	return b.Board, b.Identity, b.IdentitySHA256, err
}

// BoardInfo is a decoded board event.
type BoardInfo struct {
	Board string
	// Identity is the whole identity string, empty when it was too long
	// to carry and only IdentitySHA256 was measured.
	Identity       string
	IdentitySHA256 string // lowercase hex, always set
	Source         BoardSource
}

// ParseBoardEvent decodes a board event in one pass: BoardFields and
// BoardEventSource together.
func ParseBoardEvent(data []byte) (BoardInfo, error) {
	fs, err := Fields(data)
	if err != nil {
		return BoardInfo{}, err
	}
	if (len(fs) != 2 && len(fs) != 4) || fs[0][0] != "board" || (fs[1][0] != "identity" && fs[1][0] != "identity-sha256") {
		return BoardInfo{}, errors.New("board event: want board and identity or identity-sha256")
	}
	src, err := boardSource(fs)
	if err != nil {
		return BoardInfo{}, err
	}
	b := BoardInfo{Board: fs[0][1], Source: src}
	if fs[1][0] == "identity" {
		b.Identity = fs[1][1]
		d := sha256.Sum256([]byte(b.Identity))
		b.IdentitySHA256 = hex.EncodeToString(d[:])
	} else {
		b.IdentitySHA256 = fs[1][1]
	}
	switch {
	case b.Identity != "" && len(escape(b.Identity)) > MaxIdentity:
		return BoardInfo{}, errors.New("board event: identity too long to carry verbatim")
	case len(b.IdentitySHA256) != 2*sha256.Size || strings.Trim(b.IdentitySHA256, "0123456789abcdef") != "":
		return BoardInfo{}, errors.New("board event: identity-sha256 is not 64 lowercase hex digits")
	}
	return b, nil
}

// DecisionEvent measures a boot decision: the request, profile and
// reason, each from a closed set (package decide), so every possible
// digest can be enumerated (boot.AllDecisionEvents).
func DecisionEvent(request, profile, reason string) Event {
	return encode(TagDecision,
		field{"request", request},
		field{"profile", profile},
		field{"reason", reason})
}

// RootKind says how the root was set up.
type RootKind string

const (
	RootVerity  RootKind = "verity"  // production: dm-verity, read-only
	RootOverlay RootKind = "overlay" // development: overlayfs on the image
)

// Root describes the root that /init set up.
type Root struct {
	Kind RootKind
	// RootHash is the verity root hash (lowercase hex) of the root, or of
	// the overlay's lower layer; empty for an unverified lower.
	RootHash string
	// Upper is the overlay upper: "tmpfs" or "partition" (overlay only).
	Upper string
	// UpperLabel is the GPT label of a partition upper.
	UpperLabel string
}

// RootEvent measures the root that was set up.
func RootEvent(r Root) Event {
	if r.Kind == RootVerity {
		return encode(TagRoot, field{"root", string(RootVerity)}, field{"root-hash", strings.ToLower(r.RootHash)})
	}
	lower := strings.ToLower(r.RootHash)
	if lower == "" {
		lower = "unverified"
	}
	fs := []field{{"root", string(r.Kind)}, {"lower-hash", lower}, {"upper", r.Upper}}
	if r.Upper == "partition" {
		fs = append(fs, field{"upper-label", r.UpperLabel})
	}
	return encode(TagRoot, fs...)
}

// RootFields decodes a root event into the Root that RootEvent encodes
// (an unverified lower gives an empty RootHash). It accepts exactly what
// RootEvent produces: the kind, its fields, in order, canonical.
func RootFields(data []byte) (Root, error) {
	fs, err := Fields(data)
	if err != nil {
		return Root{}, err
	}
	m := map[string]string{}
	for _, f := range fs {
		m[f[0]] = f[1]
	}
	r := Root{Kind: RootKind(m["root"])}
	switch r.Kind {
	case RootVerity:
		r.RootHash = m["root-hash"]
		if r.RootHash == "" {
			return Root{}, errors.New("verity root without a root hash")
		}
	case RootOverlay:
		r.Upper, r.UpperLabel = m["upper"], m["upper-label"]
		if r.RootHash = m["lower-hash"]; r.RootHash == "unverified" {
			r.RootHash = ""
		}
	default:
		return Root{}, fmt.Errorf("unknown root kind %q", r.Kind)
	}
	if !bytes.Equal(RootEvent(r).Data, data) {
		return Root{}, errors.New("root event is not canonical")
	}
	return r, nil
}

// Where /init read a grant: the initramfs, or the disk's mcinit-grants
// partition (untrusted storage; see package grantpart).
const (
	GrantInInitramfs = "initramfs"
	GrantInPartition = "partition"
)

// GrantEvent measures the grant that unlocked development: the SHA-256 of
// its document (the exact bytes that were verified) and its source. It
// follows the decision event, only when the decision's reason is
// dev-allowed-grant, so a verifier sees which grant opened the unit.
func GrantEvent(sha256Hex, source string) Event {
	return encode(TagGrant, field{"grant-sha256", sha256Hex}, field{"source", source})
}

var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// GrantFields decodes a grant event; it accepts exactly what GrantEvent
// produces for a lowercase hex digest and a known source.
func GrantFields(data []byte) (sha256Hex, source string, err error) {
	fs, err := Fields(data)
	if err != nil {
		return "", "", err
	}
	if len(fs) != 2 || fs[0][0] != "grant-sha256" || fs[1][0] != "source" {
		return "", "", errors.New("grant event: want grant-sha256 and source")
	}
	sha256Hex, source = fs[0][1], fs[1][1]
	if !sha256RE.MatchString(sha256Hex) {
		return "", "", fmt.Errorf("grant event: %q is not a lowercase hex SHA-256", sha256Hex)
	}
	if source != GrantInInitramfs && source != GrantInPartition {
		return "", "", fmt.Errorf("grant event: unknown source %q", source)
	}
	return sha256Hex, source, nil
}

// FailureEvent measures why /init refused to boot. The cause is free text,
// escaped and cut to a bounded length.
func FailureEvent(cause string) Event {
	if len(cause) > maxCause {
		cause = cause[:maxCause]
	}
	return encode(TagFailure, field{"cause", cause})
}

// SeparatorEvent is the last event /init extends, just before switch_root.
// Anything after it was extended by the booted system and never counts.
func SeparatorEvent() Event {
	return Event{Tag: TagSeparator, Data: []byte(SeparatorData)}
}

// Fields decodes the canonical key=value data of an mcinit event, keeping
// order and duplicates (the key set repeats "key"). It rejects anything the
// encoders would not produce.
func Fields(data []byte) ([][2]string, error) {
	if len(data) > MaxEventData {
		return nil, fmt.Errorf("event data: %d bytes, more than %d", len(data), MaxEventData)
	}
	if len(data) == 0 || data[len(data)-1] != '\n' {
		return nil, fmt.Errorf("event data: not newline-terminated")
	}
	text := string(data[:len(data)-1]) // one copy; keys and values are slices of it
	out := make([][2]string, 0, strings.Count(text, "\n")+1)
	for i := 0; ; i++ {
		line, rest, more := strings.Cut(text, "\n")
		text = rest
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("event data line %d: not key=value", i+1)
		}
		for j := 0; j < len(k); j++ {
			if c := k[j]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return nil, fmt.Errorf("event data line %d: bad key %q", i+1, k)
			}
		}
		u, err := unescape(v)
		if err != nil {
			return nil, fmt.Errorf("event data line %d (%s): %w", i+1, k, err)
		}
		if escape(u) != v {
			return nil, fmt.Errorf("event data line %d (%s): value not canonical", i+1, k)
		}
		out = append(out, [2]string{k, u})
		if !more {
			return out, nil
		}
	}
}

// BoardEventSource returns the provenance a board event carries (zero for
// a hand-written board).
func BoardEventSource(data []byte) (BoardSource, error) {
	b, err := ParseBoardEvent(data)
	return b.Source, err
}

var (
	commitRE  = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)
	profileRE = regexp.MustCompile(`^[A-Za-z0-9_.+-]+(/[A-Za-z0-9_.+-]+)*$`)
)

func boardSource(fs [][2]string) (BoardSource, error) {
	if len(fs) == 2 {
		return BoardSource{}, nil
	}
	if fs[2][0] != "nixos-hardware-commit" || fs[3][0] != "nixos-hardware-profile" {
		return BoardSource{}, errors.New("board event: want nixos-hardware-commit and nixos-hardware-profile after the identity")
	}
	src := BoardSource{Commit: fs[2][1], Profile: fs[3][1]}
	if !commitRE.MatchString(src.Commit) || len(src.Profile) > 256 || !profileRE.MatchString(src.Profile) {
		return BoardSource{}, errors.New("board event: malformed nixos-hardware commit or profile")
	}
	return src, nil
}
