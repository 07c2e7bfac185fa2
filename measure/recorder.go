package measure

import (
	"crypto"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// DefaultTimeout bounds one TPM command on the boot path.
const DefaultTimeout = 10 * time.Second

// Recorder extends events into one PCR of every active bank and keeps the
// matching event log. With a nil TPM it only builds the log (prediction).
type Recorder struct {
	tpm    *DeadlineTPM
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
	dt, ok := tpm.(*DeadlineTPM)
	if !ok {
		dt = WithDeadline(tpm, DefaultTimeout)
	}
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
	dt, ok := tpm.(*DeadlineTPM)
	if !ok {
		dt = WithDeadline(tpm, DefaultTimeout)
	}
	r.tpm = dt
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

// ErrTPMTimeout is returned when a TPM command does not answer in time.
var ErrTPMTimeout = errors.New("TPM command timed out")

// DeadlineTPM bounds every TPM command and counts them. After a timeout the
// command may still be running in the kernel, so the TPM is considered lost
// and every later command fails at once.
type DeadlineTPM struct {
	tpm     transport.TPM
	timeout time.Duration

	mu    sync.Mutex
	count int
	lost  bool
}

// WithDeadline wraps tpm so that each command fails after timeout.
func WithDeadline(tpm transport.TPM, timeout time.Duration) *DeadlineTPM {
	return &DeadlineTPM{tpm: tpm, timeout: timeout}
}

// Send implements transport.TPM.
func (d *DeadlineTPM) Send(cmd []byte) ([]byte, error) {
	d.mu.Lock()
	if d.lost {
		d.mu.Unlock()
		return nil, ErrTPMTimeout
	}
	d.count++
	d.mu.Unlock()

	type result struct {
		rsp []byte
		err error
	}
	ch := make(chan result, 1) // buffered: a late answer must not block the goroutine
	go func() {
		rsp, err := sendRetry(d.tpm, cmd)
		ch <- result{rsp, err}
	}()
	t := time.NewTimer(d.timeout)
	defer t.Stop()
	select {
	case res := <-ch:
		return res.rsp, res.err
	case <-t.C:
		d.mu.Lock()
		d.lost = true
		d.mu.Unlock()
		return nil, fmt.Errorf("%w after %v", ErrTPMTimeout, d.timeout)
	}
}

// TPM response codes that ask the caller to send the command again.
const (
	rcRetry   = 0x922 // TPM_RC_RETRY
	rcYielded = 0x908 // TPM_RC_YIELDED
	rcTesting = 0x90A // TPM_RC_TESTING
)

// sendRetry resends a command the TPM asked to retry (at most 10 times,
// 100 ms in all), as the kernel driver does for /dev/tpm0.
func sendRetry(tpm transport.TPM, cmd []byte) ([]byte, error) {
	for i := 0; ; i++ {
		rsp, err := tpm.Send(cmd)
		if err != nil || len(rsp) < 10 || i == 10 {
			return rsp, err
		}
		switch binary.BigEndian.Uint32(rsp[6:10]) {
		case rcRetry, rcYielded, rcTesting:
			time.Sleep(10 * time.Millisecond)
			continue
		}
		return rsp, nil
	}
}

// Commands returns how many commands were sent.
func (d *DeadlineTPM) Commands() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.count
}
