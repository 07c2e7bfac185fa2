package harness

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/mcinit/mcinit/measure"
	"github.com/mcinit/mcinit/measure/swtpmtest"
)

// TPMServer is swtpm serving a machine's TPM state directory over TCP on
// the host while no QEMU runs on it: between boots, tpm2-tools and the
// mcinit CLI can provision NV indices or seal to that very TPM, as a
// factory or an owner would before the device boots.
type TPMServer struct {
	Dir  string // the TPM state directory (Machine.TPMStateDir)
	Port int    // command port; the control port is Port+1

	cmd  *exec.Cmd
	done chan struct{}
	log  bytes.Buffer
}

// StartTPMServer runs swtpm on stateDir (created if needed) with a TCP
// command and control port on 127.0.0.1. The TPM is started
// (TPM2_Startup(CLEAR)) like a freshly powered device. Stop it before
// booting a Machine on the same directory.
func StartTPMServer(ctx context.Context, stateDir string) (*TPMServer, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, err
	}
	var lastErr error
	for try := 0; try < 5; try++ {
		port, err := swtpmtest.FreePortPair()
		if err != nil {
			return nil, err
		}
		s := &TPMServer{Dir: stateDir, Port: port, done: make(chan struct{})}
		s.cmd = exec.Command("swtpm", "socket", "--tpm2",
			"--server", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port),
			"--ctrl", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port+1),
			"--tpmstate", "dir="+stateDir,
			"--flags", "not-need-init,startup-clear",
			"--log", "level=0")
		s.cmd.Stdout, s.cmd.Stderr = &s.log, &s.log
		s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := s.cmd.Start(); err != nil {
			return nil, fmt.Errorf("starting swtpm: %w", err)
		}
		go func() { s.cmd.Wait(); close(s.done) }()
		if s.waitPort(ctx, port) && s.waitPort(ctx, port+1) {
			return s, nil
		}
		s.kill()
		lastErr = fmt.Errorf("swtpm on %s did not listen on port %d: %s", stateDir, port, strings.TrimSpace(s.log.String()))
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return nil, lastErr
}

func (s *TPMServer) waitPort(ctx context.Context, port int) bool {
	end := time.Now().Add(5 * time.Second)
	for time.Now().Before(end) && ctx.Err() == nil {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return true
		}
		select {
		case <-s.done:
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false
}

// Addr is the -tpm argument of the mcinit verbs (tcp:127.0.0.1:PORT).
func (s *TPMServer) Addr() string { return "tcp:127.0.0.1:" + strconv.Itoa(s.Port) }

// Open connects go-tpm to the command port; close it before running Tool.
func (s *TPMServer) Open() (transport.TPMCloser, error) { return measure.OpenTPMAt(s.Addr()) }

// TCTI is the tpm2-tools TCTI string (TPM2TOOLS_TCTI) for this TPM.
func (s *TPMServer) TCTI() string { return fmt.Sprintf("swtpm:host=127.0.0.1,port=%d", s.Port) }

// Tool runs a tpm2-tools command (or any command honouring
// TPM2TOOLS_TCTI) against this TPM in dir and returns its stdout. swtpm
// serves one connection at a time.
func (s *TPMServer) Tool(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TPM2TOOLS_TCTI="+s.TCTI())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// Stop shuts the TPM down in order (TPM2_Shutdown(CLEAR), as an OS does
// before power-off, so the next start is not an unorderly one) and ends
// swtpm, keeping the state directory. It is idempotent.
func (s *TPMServer) Stop() error {
	if s.cmd == nil {
		return nil
	}
	var err error
	if c, derr := s.Open(); derr == nil {
		_, err = tpm2.Shutdown{ShutdownType: tpm2.TPMSUClear}.Execute(c)
		c.Close()
		if err != nil {
			err = fmt.Errorf("TPM2_Shutdown on %s: %w", s.Dir, err)
		}
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.kill()
	}
	s.cmd = nil
	return err
}

func (s *TPMServer) kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}
