package attest

import (
	"bufio"
	"bytes"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/mcinit/mcinit/internal/boundedfile"
	"github.com/mcinit/mcinit/measure"
	"github.com/mcinit/mcinit/tpmdev"
)

// Evidence file names inside an attestation directory.
const (
	FileQuote    = "quote.bin"    // TPMS_ATTEST, the signed message
	FileSig      = "quote.sig"    // TPMT_SIGNATURE
	FileAKPub    = "ak.pub"       // AK public key, PEM
	FileEventLog = "eventlog.bin" // mcinit's event log
	FilePCRs     = "pcrs.txt"     // "bank:pcr=hex" lines, as read at quote time
	FilePCRsBin  = "pcrs.bin"     // the same values concatenated (tpm2_checkquote -f)
	FileFwLog    = "fwlog.bin"    // the firmware's event log (binary_bios_measurements); optional
	FileVersion  = "version"      // "mcinit-evidence 2"; absent in version 1
)

// EvidenceVersion is the evidence format `mcinit attest` writes. Version 1
// quoted mcinit's PCR alone and had no firmware log; version 2 quotes
// FirmwarePCRs too and carries the firmware log when the kernel has one.
const EvidenceVersion = 2

// FirmwarePCRs are the PCRs quoted besides mcinit's own: the firmware's
// 0-7 (PCR 4 holds the booted image's Authenticode digest, PCR 7 the
// Secure Boot state), the systemd stub's 11 (the UKI's sections) and 12
// (a command line or credentials from outside the UKI).
var FirmwarePCRs = []int{0, 1, 2, 3, 4, 5, 6, 7, 11, 12}

// FirmwareLogPath is where Linux exposes the firmware's event log.
const FirmwareLogPath = "/sys/kernel/security/tpm0/binary_bios_measurements"

// Bounds for evidence read from untrusted files.
const (
	MaxQuoteSize = 4096
	MaxSigSize   = 1024
	MaxNonceSize = 64
	maxPCRsText  = 16384 // 10+1 PCRs × 4 banks of SHA-512 lines fit
)

// PCRValue is one PCR of one bank.
type PCRValue struct {
	Bank  crypto.Hash
	Index int
	Value []byte
}

// Evidence is what a device sends to the verifier.
type Evidence struct {
	Quote     []byte     // TPMS_ATTEST bytes
	Signature []byte     // TPMT_SIGNATURE bytes
	AKPub     []byte     // PEM; informational, the verifier uses the enrolled key
	EventLog  []byte     // mcinit's crypto-agile log
	PCRs      []PCRValue // PCR_Read at quote time; informational
	// FirmwareLog is the firmware's event log; nil without one.
	FirmwareLog []byte
	// Version is the evidence format version (1 when no version file).
	Version int
}

// Selection selects pcrs in every bank, in the given order.
func Selection(pcrs []int, banks []crypto.Hash) tpm2.TPMLPCRSelection {
	u := make([]uint, len(pcrs))
	for i, p := range pcrs {
		u[i] = uint(p)
	}
	var sel tpm2.TPMLPCRSelection
	for _, h := range banks {
		sel.PCRSelections = append(sel.PCRSelections, tpm2.TPMSPCRSelection{
			Hash:      tpm2.TPMIAlgHash(measure.AlgID(h)),
			PCRSelect: tpm2.PCClientCompatible.PCRs(u...),
		})
	}
	return sel
}

// Quote quotes mcinit's pcr alone (evidence version 1); see QuotePCRs.
func Quote(tpm transport.TPM, pcr int, banks []crypto.Hash, nonce []byte) (*Evidence, error) {
	ev, err := QuotePCRs(tpm, []int{pcr}, banks, nonce)
	if ev != nil {
		ev.Version = 1
	}
	return ev, err
}

// QuotePCRs loads the AK, quotes pcrs (ascending, no duplicates) in every
// bank with the nonce and reads the PCR values; the logs are the caller's
// to add. Every command runs under tpmdev's deadline and retry wrapper
// unless tpm already is one.
func QuotePCRs(tpm transport.TPM, pcrs []int, banks []crypto.Hash, nonce []byte) (*Evidence, error) {
	tpm = tpmdev.Bound(tpm)
	if len(nonce) == 0 || len(nonce) > MaxNonceSize {
		return nil, fmt.Errorf("quote: nonce of %d bytes, want 1-%d", len(nonce), MaxNonceSize)
	}
	ak, err := LoadAK(tpm)
	if err != nil {
		return nil, err
	}
	defer ak.Close()
	for i, p := range pcrs {
		if p < 0 || p > 23 || (i > 0 && p <= pcrs[i-1]) {
			return nil, fmt.Errorf("quote: PCR list %v is not ascending within 0-23", pcrs)
		}
	}
	sel := Selection(pcrs, banks)
	q, err := tpm2.Quote{
		SignHandle:     tpm2.AuthHandle{Handle: ak.Handle, Name: ak.Name, Auth: tpm2.PasswordAuth(nil)},
		QualifyingData: tpm2.TPM2BData{Buffer: nonce},
		InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
		PCRSelect:      sel,
	}.Execute(tpm)
	if err != nil {
		return nil, fmt.Errorf("quote: TPM2_Quote: %w", err)
	}
	pemPub, err := MarshalPublicPEM(ak.Public)
	if err != nil {
		return nil, err
	}
	ev := &Evidence{Quote: q.Quoted.Bytes(), Signature: tpm2.Marshal(&q.Signature), AKPub: pemPub, Version: EvidenceVersion}
	// One PCR per read: a TPM returns at most 8 digests per response.
	for _, h := range banks {
		for _, pcr := range pcrs {
			rsp, err := tpm2.PCRRead{PCRSelectionIn: Selection([]int{pcr}, []crypto.Hash{h})}.Execute(tpm)
			if err != nil {
				return nil, fmt.Errorf("quote: TPM2_PCR_Read %s: %w", measure.BankName(h), err)
			}
			if len(rsp.PCRValues.Digests) != 1 {
				return nil, fmt.Errorf("quote: TPM2_PCR_Read %s:%d returned %d values", measure.BankName(h), pcr, len(rsp.PCRValues.Digests))
			}
			ev.PCRs = append(ev.PCRs, PCRValue{Bank: h, Index: pcr, Value: rsp.PCRValues.Digests[0].Buffer})
		}
	}
	return ev, nil
}

// FormatPCRs renders PCR values as "sha256:13=<hex>" lines.
func FormatPCRs(vs []PCRValue) []byte {
	var b bytes.Buffer
	for _, v := range vs {
		fmt.Fprintf(&b, "%s:%d=%x\n", measure.BankName(v.Bank), v.Index, v.Value)
	}
	return b.Bytes()
}

// ParsePCRs reads FormatPCRs' output.
func ParsePCRs(b []byte) ([]PCRValue, error) {
	if len(b) > maxPCRsText {
		return nil, fmt.Errorf("pcrs: %d bytes, more than %d", len(b), maxPCRsText)
	}
	var out []PCRValue
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		bank, rest, ok1 := strings.Cut(sc.Text(), ":")
		idx, val, ok2 := strings.Cut(rest, "=")
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("pcrs line %d: want bank:pcr=hex", n)
		}
		h := bankByName(bank)
		i, err := strconv.Atoi(idx)
		if h == 0 || err != nil || i < 0 || i > 23 {
			return nil, fmt.Errorf("pcrs line %d: bad bank or PCR %q", n, bank+":"+idx)
		}
		v, err := hex.DecodeString(val)
		if err != nil || len(v) != h.Size() {
			return nil, fmt.Errorf("pcrs line %d: %s value is not %d hex bytes", n, bank, h.Size())
		}
		out = append(out, PCRValue{Bank: h, Index: i, Value: v})
	}
	return out, nil
}

func bankByName(s string) crypto.Hash {
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		if measure.BankName(h) == s {
			return h
		}
	}
	return 0
}

// WriteDir writes the evidence files into dir (created if needed).
func (e *Evidence) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var bin []byte
	for _, v := range e.PCRs {
		bin = append(bin, v.Value...)
	}
	files := []struct {
		name string
		data []byte
	}{
		{FileQuote, e.Quote}, {FileSig, e.Signature}, {FileAKPub, e.AKPub},
		{FileEventLog, e.EventLog}, {FilePCRs, FormatPCRs(e.PCRs)}, {FilePCRsBin, bin},
	}
	if e.Version >= 2 {
		files = append(files, struct {
			name string
			data []byte
		}{FileVersion, []byte(fmt.Sprintf("mcinit-evidence %d\n", e.Version))})
	}
	if e.FirmwareLog != nil {
		files = append(files, struct {
			name string
			data []byte
		}{FileFwLog, e.FirmwareLog})
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return fmt.Errorf("write evidence: %w", err)
		}
	}
	return nil
}

// ReadDir reads evidence written by WriteDir, bounding every file.
// ak.pub, the PCR files, the version and the firmware log are optional.
// Every error is an *EvidenceError: the evidence, not the verifier, is at
// fault.
func ReadDir(dir string) (*Evidence, error) {
	e, err := readDir(dir)
	if err != nil {
		return nil, &EvidenceError{Err: err}
	}
	return e, nil
}

// EvidenceError says the evidence directory is missing, unreadable,
// oversized or malformed at the file level.
type EvidenceError struct{ Err error }

func (e *EvidenceError) Error() string { return "evidence: " + e.Err.Error() }
func (e *EvidenceError) Unwrap() error { return e.Err }

func readDir(dir string) (*Evidence, error) {
	read := func(name string, max int64, optional bool) ([]byte, error) {
		b, err := boundedfile.ReadPath(filepath.Join(dir, name), max)
		if optional && errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return b, err
	}
	var e Evidence
	var err error
	if e.Quote, err = read(FileQuote, MaxQuoteSize, false); err != nil {
		return nil, err
	}
	if e.Signature, err = read(FileSig, MaxSigSize, false); err != nil {
		return nil, err
	}
	if e.EventLog, err = read(FileEventLog, measure.MaxLogSize, false); err != nil {
		return nil, err
	}
	if e.AKPub, err = read(FileAKPub, 4096, true); err != nil {
		return nil, err
	}
	txt, err := read(FilePCRs, maxPCRsText, true)
	if err != nil {
		return nil, err
	}
	if e.PCRs, err = ParsePCRs(txt); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, FilePCRs), err)
	}
	if e.FirmwareLog, err = read(FileFwLog, measure.MaxLogSize, true); err != nil {
		return nil, err
	}
	ver, err := read(FileVersion, 64, true)
	if err != nil {
		return nil, err
	}
	e.Version = 1
	if ver != nil {
		if _, err := fmt.Sscanf(string(ver), "mcinit-evidence %d\n", &e.Version); err != nil || e.Version < 2 || e.Version > EvidenceVersion {
			return nil, fmt.Errorf("%s: %q is not a supported evidence version", filepath.Join(dir, FileVersion), ver)
		}
	}
	return &e, nil
}
