// Package tpmdev is the one way mcinit talks to a TPM: it opens the
// kernel's device (or swtpm's raw command port on the host) and bounds
// every command by a deadline, so a hung TPM fails a boot step instead of
// hanging /init. It knows nothing of what is measured or decided; the
// subpackage swtpm runs the software TPM for tests.
package tpmdev

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
)

// DefaultTimeout bounds one TPM command. A real TPM answers an extend in
// milliseconds and a key creation in a few seconds; more means it is hung.
const DefaultTimeout = 10 * time.Second

// devices are the kernel's TPM character devices in the order Open tries
// them: the resource manager first, so transient objects of other users
// cannot fill the TPM's slots.
var devices = [...]string{"/dev/tpmrm0", "/dev/tpm0"}

// ErrTimeout is returned when a TPM command does not answer in time, and
// by every later command on the same TPM.
var ErrTimeout = errors.New("TPM command timed out")

// TPM is a TPM whose every command has a deadline. It counts the commands
// sent. After a timeout the command may still run in the kernel, so the
// TPM is considered lost and every later command fails at once.
type TPM struct {
	tpm     transport.TPM
	timeout time.Duration

	mu    sync.Mutex
	count int
	lost  bool
}

// WithDeadline wraps tpm so that each command fails after timeout. Close
// closes tpm when it has a Close method.
func WithDeadline(tpm transport.TPM, timeout time.Duration) *TPM {
	return &TPM{tpm: tpm, timeout: timeout}
}

// Bound returns tpm if it already is a *TPM, else tpm under DefaultTimeout:
// for libraries that must never send an unbounded command.
func Bound(tpm transport.TPM) *TPM {
	if t, ok := tpm.(*TPM); ok {
		return t
	}
	return WithDeadline(tpm, DefaultTimeout)
}

// Open opens the kernel's TPM (/dev/tpmrm0, else /dev/tpm0) under DefaultTimeout. go-tpm's
// Linux transport polls before reading and keeps the fd blocking, which
// avoids spurious EOFs.
func Open() (*TPM, error) {
	var errs []string
	for _, p := range devices {
		t, err := linuxtpm.Open(p)
		if err == nil {
			return WithDeadline(t, DefaultTimeout), nil
		}
		errs = append(errs, err.Error())
	}
	return nil, fmt.Errorf("no TPM: %s", strings.Join(errs, "; "))
}

// OpenAt opens a TPM named on a command line, under DefaultTimeout: "" for
// Open, a device path, or "tcp:HOST:PORT" for the raw command port of
// swtpm (swtpm socket --server type=tcp,port=PORT).
func OpenAt(spec string) (*TPM, error) {
	switch {
	case spec == "":
		return Open()
	case strings.HasPrefix(spec, "tcp:"):
		t, err := DialTCP(strings.TrimPrefix(spec, "tcp:"), DefaultTimeout)
		if err != nil {
			return nil, fmt.Errorf("TPM %s: %w", spec, err)
		}
		return WithDeadline(t, DefaultTimeout), nil
	default:
		t, err := linuxtpm.Open(spec)
		if err != nil {
			return nil, fmt.Errorf("TPM %s: %w", spec, err)
		}
		return WithDeadline(t, DefaultTimeout), nil
	}
}

// Send implements transport.TPM. A command the TPM asks to retry is sent
// again within the same deadline.
func (d *TPM) Send(cmd []byte) ([]byte, error) {
	d.mu.Lock()
	if d.lost {
		d.mu.Unlock()
		return nil, ErrTimeout
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
		return nil, fmt.Errorf("%w after %v", ErrTimeout, d.timeout)
	}
}

// Commands returns how many commands were sent (retries not counted).
func (d *TPM) Commands() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.count
}

// Close closes the underlying transport when it can be closed.
func (d *TPM) Close() error {
	if c, ok := d.tpm.(io.Closer); ok {
		return c.Close()
	}
	return nil
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

// maxResponse bounds a response read from a stream; TPM responses are
// at most a few KiB (TPM2_PT_MAX_RESPONSE_SIZE).
const maxResponse = 1 << 20

// DialTCP connects to a raw TPM command stream such as swtpm's --server
// port. Each command's write and response read must finish within
// timeout, so a dead peer cannot hold a goroutine forever.
func DialTCP(addr string, timeout time.Duration) (transport.TPMCloser, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	return &streamTPM{c: c, timeout: timeout}, nil
}

// streamTPM frames raw TPM commands over a stream: a response is its
// 10-byte header followed by the rest of the size the header announces.
type streamTPM struct {
	c       net.Conn
	timeout time.Duration
}

func (t *streamTPM) Send(cmd []byte) ([]byte, error) {
	_ = t.c.SetDeadline(time.Now().Add(t.timeout))
	if _, err := t.c.Write(cmd); err != nil {
		return nil, err
	}
	hdr := make([]byte, 10)
	if _, err := io.ReadFull(t.c, hdr); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[2:])
	if n < 10 || n > maxResponse {
		return nil, fmt.Errorf("TPM response size %d", n)
	}
	rsp := make([]byte, n)
	copy(rsp, hdr)
	if _, err := io.ReadFull(t.c, rsp[10:]); err != nil {
		return nil, err
	}
	return rsp, nil
}

func (t *streamTPM) Close() error { return t.c.Close() }
