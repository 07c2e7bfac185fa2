package measure

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
)

// OpenTPM opens the kernel's TPM, preferring the resource manager
// (/dev/tpmrm0, then /dev/tpm0). go-tpm's Linux transport polls before
// reading and keeps the fd blocking, which avoids spurious EOFs.
func OpenTPM() (transport.TPMCloser, error) {
	var errs []string
	for _, p := range []string{"/dev/tpmrm0", "/dev/tpm0"} {
		t, err := linuxtpm.Open(p)
		if err == nil {
			return t, nil
		}
		errs = append(errs, err.Error())
	}
	return nil, fmt.Errorf("no TPM: %s", strings.Join(errs, "; "))
}

// OpenTPMAt opens a TPM named on a command line: "" for OpenTPM, a device
// path, or "tcp:HOST:PORT" for the raw command port of swtpm
// (swtpm socket --server type=tcp,port=PORT).
func OpenTPMAt(spec string) (transport.TPMCloser, error) {
	switch {
	case spec == "":
		return OpenTPM()
	case strings.HasPrefix(spec, "tcp:"):
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(spec, "tcp:"), 5*time.Second)
		if err != nil {
			return nil, fmt.Errorf("TPM %s: %w", spec, err)
		}
		return &tcpTPM{c}, nil
	default:
		t, err := linuxtpm.Open(spec)
		if err != nil {
			return nil, fmt.Errorf("TPM %s: %w", spec, err)
		}
		return t, nil
	}
}

// tcpTPM frames raw TPM commands over a stream: a response is its 10-byte
// header followed by the rest of the size the header announces.
type tcpTPM struct{ c net.Conn }

func (t *tcpTPM) Send(cmd []byte) ([]byte, error) {
	_ = t.c.SetDeadline(time.Now().Add(DefaultTimeout))
	if _, err := t.c.Write(cmd); err != nil {
		return nil, err
	}
	hdr := make([]byte, 10)
	if _, err := io.ReadFull(t.c, hdr); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[2:])
	if n < 10 || n > 1<<20 {
		return nil, fmt.Errorf("TPM response size %d", n)
	}
	rsp := make([]byte, n)
	copy(rsp, hdr)
	if _, err := io.ReadFull(t.c, rsp[10:]); err != nil {
		return nil, err
	}
	return rsp, nil
}

func (t *tcpTPM) Close() error { return t.c.Close() }
