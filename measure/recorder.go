package measure

import (
	"crypto"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/mcinit/mcinit/tpmdev"
)

// Recorder extends events into one PCR of every active bank and keeps the
// matching event log. With a nil TPM it only builds the log (prediction).
type Recorder struct {
	tpm    *tpmdev.TPM
	pcr    int
	banks  []crypto.Hash
	log    []byte
	events []Event
	failed error // a TPM failure makes every later Record fail: fail closed
}

// NewRecorder reads the TPM's active PCR banks (one TPM2_GetCapability)
// and returns a recorder for pcr. A nil tpm gives a log-only recorder with
// the SHA-256 bank.
func NewRecorder(tpm transport.TPM, pcr int) (*Recorder, error) {
	if pcr < 0 || pcr > 23 {
		return nil, fmt.Errorf("PCR %d out of range 0-23", pcr)
	}
	if tpm == nil {
		return NewLogRecorder(pcr, crypto.SHA256)
	}
	dt := tpmdev.Bound(tpm)
	banks, err := ActiveBanks(dt, pcr)
	if err != nil {
		return nil, err
	}
	r, err := NewLogRecorder(pcr, banks...)
	if err != nil {
		return nil, err
	}
	r.tpm = dt
	return r, nil
}

// NewRecorderBanks is NewRecorder for banks already known (the kernel
// lists them in sysfs), saving the TPM2_GetCapability.
func NewRecorderBanks(tpm transport.TPM, pcr int, banks []crypto.Hash) (*Recorder, error) {
	r, err := NewLogRecorder(pcr, banks...)
	if err != nil || tpm == nil {
		return r, err
	}
	r.tpm = tpmdev.Bound(tpm)
	return r, nil
}

// NewLogRecorder returns a recorder that extends nothing and logs for the
// given banks (ordered by algorithm ID in the header).
func NewLogRecorder(pcr int, banks ...crypto.Hash) (*Recorder, error) {
	if pcr < 0 || pcr > 23 {
		return nil, fmt.Errorf("PCR %d out of range 0-23", pcr)
	}
	b, err := sortBanks(banks)
	if err != nil {
		return nil, err
	}
	return &Recorder{pcr: pcr, banks: b, log: Header(b)}, nil
}

// ActiveBanks returns the supported banks in which pcr is allocated.
func ActiveBanks(tpm transport.TPM, pcr int) ([]crypto.Hash, error) {
	rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapPCRs, Property: 0, PropertyCount: 1}.Execute(tpm)
	if err != nil {
		return nil, fmt.Errorf("TPM2_GetCapability(PCRs): %w", err)
	}
	sel, err := rsp.CapabilityData.Data.AssignedPCR()
	if err != nil {
		return nil, fmt.Errorf("TPM2_GetCapability(PCRs): %w", err)
	}
	var banks []crypto.Hash
	for _, s := range sel.PCRSelections {
		h := HashForAlg(uint16(s.Hash))
		if h == 0 || pcr/8 >= len(s.PCRSelect) || s.PCRSelect[pcr/8]&(1<<(pcr%8)) == 0 {
			continue
		}
		banks = append(banks, h)
	}
	if len(banks) == 0 {
		return nil, fmt.Errorf("TPM has no active SHA-1/SHA-256/SHA-384/SHA-512 bank with PCR %d", pcr)
	}
	return sortBanks(banks)
}

// Record extends ev into the PCR of every bank with one TPM2_PCR_Extend,
// then appends it to the log. After a TPM failure it refuses everything.
func (r *Recorder) Record(ev Event) error {
	if r.failed != nil {
		return fmt.Errorf("measure %s: TPM failed earlier: %w", ev.Tag, r.failed)
	}
	if len(ev.Data) > MaxEventData {
		return fmt.Errorf("measure %s: %d bytes of data, more than %d", ev.Tag, len(ev.Data), MaxEventData)
	}
	if r.tpm != nil {
		var d tpm2.TPMLDigestValues
		for _, h := range r.banks {
			d.Digests = append(d.Digests, tpm2.TPMTHA{HashAlg: tpm2.TPMIAlgHash(AlgID(h)), Digest: Digest(h, ev)})
		}
		_, err := tpm2.PCRExtend{
			PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(r.pcr), Auth: tpm2.PasswordAuth(nil)},
			Digests:   d,
		}.Execute(r.tpm)
		if err != nil {
			r.failed = err
			return fmt.Errorf("measure %s: TPM2_PCR_Extend(PCR %d): %w", ev.Tag, r.pcr, err)
		}
	}
	r.log = append(r.log, Record(r.pcr, r.banks, ev)...)
	r.events = append(r.events, Event{Tag: ev.Tag, Data: append([]byte(nil), ev.Data...)})
	return nil
}

// Log returns a copy of the event log so far.
func (r *Recorder) Log() []byte { return append([]byte(nil), r.log...) }

// Events returns the events recorded so far.
func (r *Recorder) Events() []Event { return append([]Event(nil), r.events...) }

// Banks returns the banks extended, in header order.
func (r *Recorder) Banks() []crypto.Hash { return append([]crypto.Hash(nil), r.banks...) }

// PCR returns the PCR extended.
func (r *Recorder) PCR() int { return r.pcr }

// Commands returns how many TPM commands the recorder issued.
func (r *Recorder) Commands() int {
	if r.tpm == nil {
		return 0
	}
	return r.tpm.Commands()
}

// WriteLog writes the log to path (mode 0444), creating its directory.
func (r *Recorder) WriteLog(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("event log: %w", err)
	}
	if err := os.WriteFile(path, r.log, 0o444); err != nil {
		return fmt.Errorf("event log: %w", err)
	}
	return nil
}
