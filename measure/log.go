package measure

import (
	"bytes"
	"crypto"
	_ "crypto/sha1" // SHA-1 PCR banks
	_ "crypto/sha256"
	_ "crypto/sha512" // SHA-384 and SHA-512 PCR banks
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
)

// TCG event types used here (TCG PC Client Platform Firmware Profile).
const (
	EvNoAction = 3 // EV_NO_ACTION: the Spec ID header, never extended
	EvEventTag = 6 // EV_EVENT_TAG: TCG_PCClientTaggedEvent data
)

// Log bounds: an mcinit log holds a handful of events; anything beyond
// these limits is hostile.
const (
	MaxLogSize    = 1 << 20
	MaxLogRecords = 4096
	maxRecordData = 64 << 10
)

// specIDSignature starts the Spec ID Event03 header.
var specIDSignature = []byte("Spec ID Event03\x00")

// Bank algorithms, by TPM_ALG_ID.
var bankAlgs = []struct {
	id   uint16
	hash crypto.Hash
}{
	{0x0004, crypto.SHA1},
	{0x000B, crypto.SHA256},
	{0x000C, crypto.SHA384},
	{0x000D, crypto.SHA512},
}

// AlgID returns the TPM_ALG_ID of a supported bank hash, or 0.
func AlgID(h crypto.Hash) uint16 {
	for _, a := range bankAlgs {
		if a.hash == h {
			return a.id
		}
	}
	return 0
}

// HashForAlg maps a TPM_ALG_ID to a supported bank hash, or 0.
func HashForAlg(id uint16) crypto.Hash {
	for _, a := range bankAlgs {
		if a.id == id {
			return a.hash
		}
	}
	return 0
}

// BankName is the tpm2-tools name of a bank ("sha256").
func BankName(h crypto.Hash) string {
	switch h {
	case crypto.SHA1:
		return "sha1"
	case crypto.SHA256:
		return "sha256"
	case crypto.SHA384:
		return "sha384"
	case crypto.SHA512:
		return "sha512"
	}
	return h.String()
}

// sortBanks orders banks by TPM_ALG_ID and rejects unknown or duplicate ones.
func sortBanks(banks []crypto.Hash) ([]crypto.Hash, error) {
	if len(banks) == 0 {
		return nil, errors.New("no PCR bank")
	}
	seen := map[crypto.Hash]bool{}
	for _, h := range banks {
		if AlgID(h) == 0 {
			return nil, fmt.Errorf("unsupported PCR bank %v", h)
		}
		if seen[h] {
			return nil, fmt.Errorf("PCR bank %s listed twice", BankName(h))
		}
		seen[h] = true
	}
	var out []crypto.Hash
	for _, a := range bankAlgs {
		if seen[a.hash] {
			out = append(out, a.hash)
		}
	}
	return out, nil
}

func putLE32(b []byte, v uint32) { binary.LittleEndian.PutUint32(b, v) }

// Header returns the log's first record: EV_NO_ACTION in the SHA-1 log
// format, carrying the Spec ID Event03 structure that lists the banks.
func Header(banks []crypto.Hash) []byte {
	var spec bytes.Buffer
	spec.Write(specIDSignature)
	le := func(v any) { _ = binary.Write(&spec, binary.LittleEndian, v) }
	le(uint32(0))                  // platformClass: client
	spec.Write([]byte{0, 2, 0, 2}) // specVersionMinor, specVersionMajor, specErrata, uintnSize (2 = UINT64)
	le(uint32(len(banks)))         // numberOfAlgorithms
	for _, h := range banks {
		le(AlgID(h))
		le(uint16(h.Size()))
	}
	spec.WriteByte(0) // vendorInfoSize

	b := make([]byte, 32, 32+spec.Len())
	putLE32(b[0:], 0)          // PCR index
	putLE32(b[4:], EvNoAction) // event type
	// b[8:28]: zero SHA-1 digest
	putLE32(b[28:], uint32(spec.Len()))
	return append(b, spec.Bytes()...)
}

// Record returns the TCG_PCR_EVENT2 record of ev extended into pcr, with
// one digest per bank: the bank's hash of the tagged-event field.
func Record(pcr int, banks []crypto.Hash, ev Event) []byte {
	field := ev.TaggedEvent()
	b := make([]byte, 12, 64+len(field))
	putLE32(b[0:], uint32(pcr))
	putLE32(b[4:], EvEventTag)
	putLE32(b[8:], uint32(len(banks)))
	for _, h := range banks {
		b = binary.LittleEndian.AppendUint16(b, AlgID(h))
		b = append(b, Digest(h, ev)...)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(field)))
	return append(b, field...)
}

// Digest is the value extended for ev in the bank h.
func Digest(h crypto.Hash, ev Event) []byte {
	return DigestWith(h.New(), nil, ev)
}

// DigestWith is Digest with a caller's hasher of the bank (reset here),
// written over buf's storage (grown when short): verifiers hash every
// event in every bank, and a scratch buffer reused for each saves the
// allocations.
func DigestWith(d hash.Hash, buf []byte, ev Event) []byte {
	hdr := binary.LittleEndian.AppendUint32(buf[:0], uint32(ev.Tag))
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(len(ev.Data)))
	d.Reset()
	d.Write(hdr)
	d.Write(ev.Data)
	return d.Sum(hdr[:0])
}

// BuildLog renders a complete log: header, then one record per event.
func BuildLog(pcr int, banks []crypto.Hash, events []Event) ([]byte, error) {
	banks, err := sortBanks(banks)
	if err != nil {
		return nil, err
	}
	b := Header(banks)
	for _, ev := range events {
		b = append(b, Record(pcr, banks, ev)...)
	}
	return b, nil
}

// Extend returns H(old || digest).
func Extend(h crypto.Hash, old, digest []byte) []byte {
	d := h.New()
	d.Write(old)
	d.Write(digest)
	return d.Sum(nil)
}

// Expected replays events into a zeroed PCR for each bank.
func Expected(banks []crypto.Hash, events []Event) map[crypto.Hash][]byte {
	out := map[crypto.Hash][]byte{}
	for _, h := range banks {
		v := make([]byte, h.Size())
		for _, ev := range events {
			v = Extend(h, v, Digest(h, ev))
		}
		out[h] = v
	}
	return out
}

// LogRecord is one parsed TCG_PCR_EVENT2 record.
type LogRecord struct {
	PCR     uint32
	Type    uint32
	Digests [][]byte // one per bank, in the header's bank order
	Data    []byte   // the event field
}

// Tagged decodes an EV_EVENT_TAG record's TCG_PCClientTaggedEvent.
func (r LogRecord) Tagged() (Event, error) {
	if r.Type != EvEventTag {
		return Event{}, fmt.Errorf("event type %d, not EV_EVENT_TAG", r.Type)
	}
	if len(r.Data) < 8 {
		return Event{}, errors.New("tagged event shorter than its 8-byte header")
	}
	n := binary.LittleEndian.Uint32(r.Data[4:])
	if uint64(n) != uint64(len(r.Data)-8) {
		return Event{}, fmt.Errorf("taggedEventDataSize %d, but %d bytes follow", n, len(r.Data)-8)
	}
	return Event{Tag: Tag(binary.LittleEndian.Uint32(r.Data)), Data: r.Data[8:]}, nil
}

// Log is a parsed crypto-agile event log.
type Log struct {
	Banks   []crypto.Hash // from the Spec ID header, in its order
	Records []LogRecord
}

type reader struct {
	b   []byte
	off int
}

func (r *reader) take(n int, what string) ([]byte, error) {
	if n < 0 || len(r.b)-r.off < n {
		return nil, fmt.Errorf("%s at offset %d: truncated", what, r.off)
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s, nil
}

func (r *reader) u32(what string) (uint32, error) {
	s, err := r.take(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(s), nil
}

func (r *reader) u16(what string) (uint16, error) {
	s, err := r.take(2, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(s), nil
}

// ParseLog strictly parses a crypto-agile log: a Spec ID Event03 header
// naming supported banks without duplicates, then TCG_PCR_EVENT2 records
// whose digests list exactly those banks in that order. Anything else,
// including trailing bytes, is an error that names the offset.
func ParseLog(b []byte) (*Log, error) { return parseLog(b, false) }

// ParseFirmwareLog parses a firmware's log as Linux exposes it
// (/sys/kernel/security/tpm0/binary_bios_measurements) with the same
// strict rules, except that EV_NO_ACTION records may follow the header
// (firmware logs carry StartupLocality and similar informational records).
// They are kept in Records and never replayed.
func ParseFirmwareLog(b []byte) (*Log, error) { return parseLog(b, true) }

func parseLog(b []byte, firmware bool) (*Log, error) {
	if len(b) > MaxLogSize {
		return nil, fmt.Errorf("event log: %d bytes, more than %d", len(b), MaxLogSize)
	}
	r := &reader{b: b}
	hdr, err := r.take(32, "header record")
	if err != nil {
		return nil, fmt.Errorf("event log: %w", err)
	}
	if binary.LittleEndian.Uint32(hdr[0:]) != 0 || binary.LittleEndian.Uint32(hdr[4:]) != EvNoAction || !bytes.Equal(hdr[8:28], make([]byte, 20)) {
		return nil, errors.New("event log: first record is not an EV_NO_ACTION header in PCR 0")
	}
	size := binary.LittleEndian.Uint32(hdr[28:])
	spec, err := r.take(int(min(size, MaxLogSize)), "Spec ID event")
	if err != nil || size > MaxLogSize {
		return nil, errors.New("event log: Spec ID event truncated")
	}
	banks, err := parseSpecID(spec)
	if err != nil {
		return nil, fmt.Errorf("event log: %w", err)
	}
	l := &Log{Banks: banks}
	for r.off < len(b) {
		if len(l.Records) == MaxLogRecords {
			return nil, fmt.Errorf("event log: more than %d records", MaxLogRecords)
		}
		rec, err := parseRecord(r, banks, firmware)
		if err != nil {
			return nil, fmt.Errorf("event log record %d: %w", len(l.Records)+1, err)
		}
		l.Records = append(l.Records, rec)
	}
	return l, nil
}

func parseSpecID(s []byte) ([]crypto.Hash, error) {
	r := &reader{b: s}
	sig, err := r.take(16, "signature")
	if err != nil || !bytes.Equal(sig, specIDSignature) {
		return nil, errors.New("header: not a Spec ID Event03")
	}
	if _, err := r.u32("platformClass"); err != nil {
		return nil, err
	}
	v, err := r.take(4, "spec version")
	if err != nil {
		return nil, err
	}
	if v[0] != 0 || v[1] != 2 || v[3] != 2 {
		return nil, fmt.Errorf("header: spec version %d.%d uintnSize %d, want 2.0 and 2", v[1], v[0], v[3])
	}
	n, err := r.u32("numberOfAlgorithms")
	if err != nil {
		return nil, err
	}
	if n == 0 || n > uint32(len(bankAlgs)) {
		return nil, fmt.Errorf("header: %d algorithms", n)
	}
	var banks []crypto.Hash
	seen := map[crypto.Hash]bool{}
	for i := uint32(0); i < n; i++ {
		id, err := r.u16("algorithmId")
		if err != nil {
			return nil, err
		}
		sz, err := r.u16("digestSize")
		if err != nil {
			return nil, err
		}
		h := HashForAlg(id)
		if h == 0 || int(sz) != h.Size() || seen[h] {
			return nil, fmt.Errorf("header: algorithm %#04x size %d unsupported or repeated", id, sz)
		}
		seen[h] = true
		banks = append(banks, h)
	}
	vs, err := r.take(1, "vendorInfoSize")
	if err != nil {
		return nil, err
	}
	if int(vs[0]) != len(s)-r.off {
		return nil, fmt.Errorf("header: vendorInfoSize %d, but %d bytes follow", vs[0], len(s)-r.off)
	}
	return banks, nil
}

func parseRecord(r *reader, banks []crypto.Hash, allowNoAction bool) (LogRecord, error) {
	var rec LogRecord
	var err error
	if rec.PCR, err = r.u32("pcrIndex"); err != nil {
		return rec, err
	}
	if rec.PCR > 23 {
		return rec, fmt.Errorf("pcrIndex %d out of range", rec.PCR)
	}
	if rec.Type, err = r.u32("eventType"); err != nil {
		return rec, err
	}
	if rec.Type == EvNoAction && !allowNoAction {
		return rec, errors.New("EV_NO_ACTION after the header")
	}
	n, err := r.u32("digest count")
	if err != nil {
		return rec, err
	}
	if n != uint32(len(banks)) {
		return rec, fmt.Errorf("%d digests, header lists %d banks", n, len(banks))
	}
	rec.Digests = make([][]byte, 0, len(banks))
	for _, h := range banks {
		id, err := r.u16("digest algorithm")
		if err != nil {
			return rec, err
		}
		if id != AlgID(h) {
			return rec, fmt.Errorf("digest algorithm %#04x, want %s in header order", id, BankName(h))
		}
		d, err := r.take(h.Size(), "digest")
		if err != nil {
			return rec, fmt.Errorf("%s %w", BankName(h), err)
		}
		rec.Digests = append(rec.Digests, d)
	}
	size, err := r.u32("eventSize")
	if err != nil {
		return rec, err
	}
	if size > maxRecordData {
		return rec, fmt.Errorf("eventSize %d, more than %d", size, maxRecordData)
	}
	if rec.Data, err = r.take(int(size), "event data"); err != nil {
		return rec, err
	}
	return rec, nil
}

// Replay extends every record of pcr, in order, into a zeroed PCR per bank.
// EV_NO_ACTION records are never extended.
func (l *Log) Replay(pcr int) map[crypto.Hash][]byte { return l.ReplayPCRs([]int{pcr}, 0)[pcr] }

// ReplayPCRs replays several PCRs in one pass over the log (verifiers
// replay whole firmware logs per bank). PCR 0 starts with its last byte
// set to locality0 (a TPM2_Startup at locality 3 or 4, as a firmware log's
// StartupLocality event says); every other PCR starts at zero.
func (l *Log) ReplayPCRs(pcrs []int, locality0 byte) map[int]map[crypto.Hash][]byte {
	var want [24]bool
	out := make(map[int]map[crypto.Hash][]byte, len(pcrs))
	for _, p := range pcrs {
		if p >= 0 && p < len(want) {
			want[p] = true
			out[p] = make(map[crypto.Hash][]byte, len(l.Banks))
		}
	}
	for i, h := range l.Banks {
		var v [24][]byte
		for p := range want {
			if want[p] {
				v[p] = make([]byte, h.Size())
			}
		}
		if want[0] {
			v[0][h.Size()-1] = locality0
		}
		d := h.New() // one hasher per bank
		for _, rec := range l.Records {
			if !want[rec.PCR] || rec.Type == EvNoAction {
				continue
			}
			d.Reset()
			d.Write(v[rec.PCR])
			d.Write(rec.Digests[i])
			v[rec.PCR] = d.Sum(v[rec.PCR][:0])
		}
		for p := range want {
			if want[p] {
				out[p][h] = v[p]
			}
		}
	}
	return out
}
