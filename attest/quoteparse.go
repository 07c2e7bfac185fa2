package attest

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// Bounds from the TPM 2.0 structures: a TPM2B_NAME holds at most a
// TPMT_HA of SHA-512 (2+64 bytes), a TPM2B_DATA or TPM2B_DIGEST at most a
// SHA-512 digest, a PCR selection at most 32 bytes (256 PCRs) and a
// TPML_PCR_SELECTION at most one entry per hash algorithm (HASH_COUNT).
const (
	maxNameSize   = 2 + 64
	maxDigestSize = 64
	maxSelectSize = 32
	maxSelections = 16
	// maxECCParameter is MAX_ECC_KEY_BYTES for the largest curve (P-521).
	maxECCParameter = 66
)

// ParseQuote decodes and checks a TPMS_ATTEST of type quote: magic
// TPM_GENERATED_VALUE, type TPM_ST_ATTEST_QUOTE, every size within the
// structure's bounds, TPMI_YES_NO for clockInfo.safe, no trailing bytes.
// It is written out by hand (TPM 2.0 Part 2, 10.12.12 TPMS_ATTEST) because
// go-tpm's reflective unmarshal and the re-marshal needed to find trailing
// bytes cost about a third of a verification; FuzzParseQuoteAgrees holds
// it to go-tpm's decoding.
func ParseQuote(b []byte) (*tpm2.TPMSAttest, *tpm2.TPMSQuoteInfo, error) {
	if len(b) == 0 || len(b) > MaxQuoteSize {
		return nil, nil, fmt.Errorf("quote: %d bytes, want 1-%d", len(b), MaxQuoteSize)
	}
	r := beReader{b: b}
	magic := r.u32()
	typ := r.u16()
	if r.err == nil && magic != uint32(tpm2.TPMGeneratedValue) {
		return nil, nil, errors.New("quote: magic is not TPM_GENERATED_VALUE")
	}
	if r.err == nil && typ != uint16(tpm2.TPMSTAttestQuote) {
		return nil, nil, fmt.Errorf("quote: attestation type %#x, not a quote", typ)
	}
	att := &tpm2.TPMSAttest{Magic: tpm2.TPMGeneratedValue, Type: tpm2.TPMSTAttestQuote}
	att.QualifiedSigner.Buffer = r.sized(maxNameSize, "qualifiedSigner")
	att.ExtraData.Buffer = r.sized(maxDigestSize, "extraData")
	att.ClockInfo.Clock = r.u64()
	att.ClockInfo.ResetCount = r.u32()
	att.ClockInfo.RestartCount = r.u32()
	safe := r.u8()
	if r.err == nil && safe > 1 {
		r.fail("clockInfo.safe is not TPMI_YES_NO")
	}
	att.ClockInfo.Safe = safe == 1
	att.FirmwareVersion = r.u64()
	qi := &tpm2.TPMSQuoteInfo{}
	n := r.u32()
	if r.err == nil && n > maxSelections {
		r.fail(fmt.Sprintf("%d PCR selections", n))
	}
	for i := uint32(0); r.err == nil && i < n; i++ {
		h := r.u16()
		sz := int(r.u8())
		if r.err == nil && sz > maxSelectSize {
			r.fail(fmt.Sprintf("PCR selection of %d bytes", sz))
		}
		sel := r.take(sz, "pcrSelect")
		qi.PCRSelect.PCRSelections = append(qi.PCRSelect.PCRSelections, tpm2.TPMSPCRSelection{
			Hash: tpm2.TPMIAlgHash(h), PCRSelect: sel})
	}
	qi.PCRDigest.Buffer = r.sized(maxDigestSize, "pcrDigest")
	if r.err == nil && r.off != len(b) {
		return nil, nil, errors.New("quote: trailing bytes after TPMS_ATTEST")
	}
	if r.err != nil {
		return nil, nil, fmt.Errorf("quote: TPMS_ATTEST: %w", r.err)
	}
	att.Attested = tpm2.NewTPMUAttest(tpm2.TPMSTAttestQuote, qi)
	return att, qi, nil
}

// beReader reads big-endian TPM structures; the first error sticks.
type beReader struct {
	b   []byte
	off int
	err error
}

func (r *beReader) fail(msg string) {
	if r.err == nil {
		r.err = fmt.Errorf("%s at offset %d", msg, r.off)
	}
}

func (r *beReader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b)-r.off < n {
		r.fail(what + " truncated")
		return nil
	}
	s := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return s
}

func (r *beReader) u8() uint8 {
	if s := r.take(1, "byte"); s != nil {
		return s[0]
	}
	return 0
}

func (r *beReader) u16() uint16 {
	if s := r.take(2, "u16"); s != nil {
		return binary.BigEndian.Uint16(s)
	}
	return 0
}

func (r *beReader) u32() uint32 {
	if s := r.take(4, "u32"); s != nil {
		return binary.BigEndian.Uint32(s)
	}
	return 0
}

func (r *beReader) u64() uint64 {
	if s := r.take(8, "u64"); s != nil {
		return binary.BigEndian.Uint64(s)
	}
	return 0
}

// sized reads a TPM2B: a u16 size, at most max, then that many bytes.
func (r *beReader) sized(max int, what string) []byte {
	n := int(r.u16())
	if r.err == nil && n > max {
		r.fail(fmt.Sprintf("%s of %d bytes, more than %d", what, n, max))
		return nil
	}
	return r.take(n, what)
}
