package tpmdev

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport/simulator"
)

// fakeTPM answers each command with the next response code in rcs (the
// last one repeats), or blocks until release is closed.
type fakeTPM struct {
	rcs     []uint32
	sends   atomic.Int32
	release chan struct{}
	closed  bool
}

func (f *fakeTPM) Send(cmd []byte) ([]byte, error) {
	n := int(f.sends.Add(1)) - 1
	if f.release != nil {
		<-f.release
	}
	rc := f.rcs[min(n, len(f.rcs)-1)]
	rsp := make([]byte, 10)
	binary.BigEndian.PutUint16(rsp, 0x8001)
	binary.BigEndian.PutUint32(rsp[2:], 10)
	binary.BigEndian.PutUint32(rsp[6:], rc)
	return rsp, nil
}

func (f *fakeTPM) Close() error { f.closed = true; return nil }

// TestDeadline: a command that does not answer fails with ErrTimeout after
// the deadline, and every later command fails at once without reaching
// the TPM (it may still be busy with the first).
func TestDeadline(t *testing.T) {
	f := &fakeTPM{rcs: []uint32{0}, release: make(chan struct{})}
	defer close(f.release)
	d := WithDeadline(f, 50*time.Millisecond)
	start := time.Now()
	if _, err := d.Send(make([]byte, 10)); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Send to a hung TPM: %v, want ErrTimeout", err)
	}
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Errorf("gave up after %v, before the deadline", el)
	}
	if _, err := d.Send(make([]byte, 10)); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Send after a timeout: %v, want ErrTimeout", err)
	}
	if n := f.sends.Load(); n != 1 {
		t.Errorf("the TPM saw %d commands, want 1", n)
	}
	if n := d.Commands(); n != 1 {
		t.Errorf("Commands() = %d, want 1", n)
	}
}

// TestRetry: TPM_RC_RETRY, _YIELDED and _TESTING make the command go again
// within the one deadline; other codes are returned as they are.
func TestRetry(t *testing.T) {
	f := &fakeTPM{rcs: []uint32{rcRetry, rcYielded, rcTesting, 0x101}}
	d := WithDeadline(f, time.Minute)
	rsp, err := d.Send(make([]byte, 10))
	if err != nil {
		t.Fatal(err)
	}
	if rc := binary.BigEndian.Uint32(rsp[6:]); rc != 0x101 {
		t.Errorf("response code %#x, want 0x101", rc)
	}
	if n := f.sends.Load(); n != 4 {
		t.Errorf("sent %d times, want 4", n)
	}
	if n := d.Commands(); n != 1 {
		t.Errorf("Commands() = %d, want 1 (retries are one command)", n)
	}
	// A TPM that keeps asking is given up after 11 tries.
	f = &fakeTPM{rcs: []uint32{rcRetry}}
	if _, err := WithDeadline(f, time.Minute).Send(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if n := f.sends.Load(); n != 11 {
		t.Errorf("a TPM always answering RETRY got %d sends, want 11", n)
	}
}

func TestBoundAndClose(t *testing.T) {
	f := &fakeTPM{rcs: []uint32{0}}
	d := WithDeadline(f, time.Second)
	if Bound(d) != d {
		t.Error("Bound wrapped a *TPM again")
	}
	b := Bound(f)
	if b.timeout != DefaultTimeout {
		t.Errorf("Bound timeout %v, want %v", b.timeout, DefaultTimeout)
	}
	if err := b.Close(); err != nil || !f.closed {
		t.Errorf("Close: %v, closed %v", err, f.closed)
	}
}

// TestSimulator runs a real command through the wrapper.
func TestSimulator(t *testing.T) {
	sim, err := simulator.OpenSimulator()
	if err != nil {
		t.Fatal(err)
	}
	d := WithDeadline(sim, DefaultTimeout)
	defer d.Close()
	if _, err := (tpm2.GetRandom{BytesRequested: 8}).Execute(d); err != nil {
		t.Fatal(err)
	}
	if d.Commands() != 1 {
		t.Errorf("Commands() = %d", d.Commands())
	}
}

// TestOpenNoDevice: without a TPM, Open says why for each device.
func TestOpenNoDevice(t *testing.T) {
	for _, p := range devices {
		if _, err := os.Stat(p); err == nil {
			t.Skipf("%s exists on this machine", p)
		}
	}
	_, err := Open()
	if err == nil || !strings.HasPrefix(err.Error(), "no TPM: ") || !strings.Contains(err.Error(), "/dev/tpmrm0") || !strings.Contains(err.Error(), "/dev/tpm0") {
		t.Errorf("Open without a TPM: %v", err)
	}
	if _, err := OpenAt("/nonexistent/tpm"); err == nil || !strings.Contains(err.Error(), "TPM /nonexistent/tpm") {
		t.Errorf("OpenAt of a missing device: %v", err)
	}
	if _, err := OpenAt("tcp:127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "TPM tcp:127.0.0.1:1") {
		t.Errorf("OpenAt of a closed port: %v", err)
	}
}

// TestStreamFraming: a response is read to the size its header gives, and
// a size out of bounds is refused rather than allocated.
func TestStreamFraming(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		for _, size := range []uint32{12, maxResponse + 1} {
			cmd := make([]byte, 10)
			if _, err := io.ReadFull(c, cmd); err != nil {
				return
			}
			rsp := make([]byte, 12)
			binary.BigEndian.PutUint16(rsp, 0x8001)
			binary.BigEndian.PutUint32(rsp[2:], size)
			rsp[10], rsp[11] = 0xaa, 0xbb
			c.Write(rsp)
		}
	}()
	s, err := DialTCP(l.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rsp, err := s.Send(make([]byte, 10))
	if err != nil || len(rsp) != 12 || rsp[11] != 0xbb {
		t.Fatalf("first response %x, %v", rsp, err)
	}
	if _, err := s.Send(make([]byte, 10)); err == nil || !strings.Contains(err.Error(), "TPM response size") {
		t.Errorf("oversized response: %v", err)
	}
}
