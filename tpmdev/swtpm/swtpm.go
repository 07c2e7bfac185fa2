// Package swtpm runs swtpm, the software TPM 2.0, on the host: as a TCP
// server that go-tpm (through tpmdev) and tpm2-tools share, or behind a
// Unix control socket for QEMU's tpm-emulator. Tests, the e2e harness and
// its fixtures all start swtpm here.
//
// Paths given to swtpm are made absolute first: swtpm resolves them after
// it starts, and with --daemon it changes to / before opening them.
package swtpm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/mcinit/mcinit/tpmdev"
)

// Config describes one swtpm.
type Config struct {
	// StateDir holds the TPM's state (seeds, NV indices); it is created
	// if needed and kept. Empty means a fresh state removed by Stop.
	StateDir string
	// Banks, when set, allocates these PCR banks (swtpm_setup --pcr-banks,
	// e.g. "sha1,sha256,sha384") in a state directory without a TPM yet.
	Banks string
	// LogFile, when set, receives every command and response in hex
	// (swtpm log level 20; see the e2e harness's ParseTPMLog).
	LogFile string
	// Output receives swtpm's own stdout and stderr, optional.
	Output io.Writer
}

// stopGrace is how long swtpm may take to write its state after SIGTERM.
const stopGrace = 5 * time.Second

// process is one running swtpm.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	out  *syncBuffer // swtpm's output, for error messages
}

// prepare makes the config's paths absolute, creates the state directory
// (a temporary one when none is given; it is returned as tmp) and
// allocates the banks.
func (c *Config) prepare() (tmp string, err error) {
	if c.StateDir == "" {
		if tmp, err = os.MkdirTemp("", "mcinit-swtpm-"); err != nil {
			return "", err
		}
		c.StateDir = tmp
	}
	if c.StateDir, err = filepath.Abs(c.StateDir); err != nil {
		return tmp, err
	}
	if c.LogFile != "" {
		if c.LogFile, err = filepath.Abs(c.LogFile); err != nil {
			return tmp, err
		}
	}
	if err := os.MkdirAll(c.StateDir, 0o700); err != nil {
		return tmp, err
	}
	if c.Banks != "" {
		out, err := exec.Command("swtpm_setup", "--tpm2", "--tpmstate", c.StateDir, "--pcr-banks", c.Banks,
			"--not-overwrite", "--config", "/dev/null").CombinedOutput()
		if err != nil {
			return tmp, fmt.Errorf("swtpm_setup --pcr-banks %s: %v: %s", c.Banks, err, bytes.TrimSpace(out))
		}
	}
	return tmp, nil
}

func (c *Config) logArg() string {
	if c.LogFile == "" {
		return "level=0"
	}
	return "file=" + c.LogFile + ",level=20"
}

// start runs `swtpm socket --tpm2 args...` as a child that dies with us.
func (c *Config) start(args ...string) (*process, error) {
	p := &process{done: make(chan struct{}), out: &syncBuffer{}}
	args = append([]string{"socket", "--tpm2", "--tpmstate", "dir=" + c.StateDir, "--log", c.logArg()}, args...)
	p.cmd = exec.Command("swtpm", args...)
	var w io.Writer = p.out
	if c.Output != nil {
		w = io.MultiWriter(c.Output, p.out)
	}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting swtpm: %w", err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	return p, nil
}

// stop ends swtpm: SIGTERM lets it write its state; a paused process is
// continued first so that it can die.
func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		p.kill()
	}
}

func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *process) output() string { return strings.TrimSpace(p.out.String()) }

// Server is swtpm serving TPM commands on a loopback TCP port, with its
// control channel on the next port. It starts the TPM itself
// (TPM2_Startup(CLEAR)) like a freshly powered device. swtpm serves one
// connection at a time: close a Go connection before running a Tool.
type Server struct {
	Dir  string // the state directory (absolute)
	Port int    // command port; the control port is Port+1

	cfg Config
	tmp string
	p   *process
}

// StartServer runs swtpm as a TCP server on cfg.StateDir.
func StartServer(ctx context.Context, cfg Config) (*Server, error) {
	tmp, err := cfg.prepare()
	if err != nil {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
		return nil, err
	}
	s := &Server{Dir: cfg.StateDir, cfg: cfg, tmp: tmp}
	if err := s.start(ctx); err != nil {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
		return nil, err
	}
	return s, nil
}

func (s *Server) start(ctx context.Context) error {
	var lastErr error
	// Another process may take the free ports before swtpm binds them.
	for try := 0; try < 5; try++ {
		port, err := FreePortPair()
		if err != nil {
			return err
		}
		p, err := s.cfg.start(
			"--server", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port),
			"--ctrl", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port+1),
			"--flags", "not-need-init,startup-clear")
		if err != nil {
			return err
		}
		if waitPort(ctx, p, port) && waitPort(ctx, p, port+1) {
			s.p, s.Port = p, port
			return nil
		}
		p.kill()
		lastErr = fmt.Errorf("swtpm on %s did not listen on port %d: %s", s.Dir, port, p.output())
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return lastErr
}

// waitPort waits up to 5 s for a listener on port while p runs.
func waitPort(ctx context.Context, p *process, port int) bool {
	end := time.Now().Add(5 * time.Second)
	for time.Now().Before(end) && ctx.Err() == nil {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return true
		}
		select {
		case <-p.done:
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false
}

// FreePortPair finds two free consecutive loopback TCP ports (swtpm's
// server and control channels); the first is returned.
func FreePortPair() (int, error) {
	for i := 0; i < 20; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if p >= 65535 {
			continue
		}
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1))
		if err != nil {
			continue
		}
		l2.Close()
		return p, nil
	}
	return 0, errors.New("no free pair of loopback ports")
}

// Addr is the -tpm argument of the mcinit verbs (tcp:127.0.0.1:PORT).
func (s *Server) Addr() string { return "tcp:127.0.0.1:" + strconv.Itoa(s.Port) }

// TCTI is the tpm2-tools TCTI string (TPM2TOOLS_TCTI) for this TPM.
func (s *Server) TCTI() string { return fmt.Sprintf("swtpm:host=127.0.0.1,port=%d", s.Port) }

// Open connects go-tpm to the command port, every command under
// tpmdev.DefaultTimeout.
func (s *Server) Open() (*tpmdev.TPM, error) { return tpmdev.OpenAt(s.Addr()) }

// Tool runs a tpm2-tools command (or any command honouring
// TPM2TOOLS_TCTI) against this TPM in dir ("" for the current one) and
// returns its stdout.
func (s *Server) Tool(ctx context.Context, dir string, args ...string) (string, error) {
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

// Pause freezes swtpm (SIGSTOP): a hung TPM. Resume undoes it.
func (s *Server) Pause() {
	if s.p != nil {
		_ = s.p.cmd.Process.Signal(syscall.SIGSTOP)
	}
}

// Resume continues a paused swtpm (SIGCONT).
func (s *Server) Resume() {
	if s.p != nil {
		_ = s.p.cmd.Process.Signal(syscall.SIGCONT)
	}
}

// shutdownTimeout bounds the TPM2_Shutdown of Stop: a TPM that does not
// answer (a connection still open elsewhere) is ended without it.
const shutdownTimeout = 3 * time.Second

// halt shuts the TPM down in order (TPM2_Shutdown(CLEAR), as an OS does
// before power-off, so the next start is not an unorderly one) and ends
// swtpm, keeping the state.
func (s *Server) halt() error {
	if s.p == nil {
		return nil
	}
	s.Resume()
	var err error
	if c, derr := tpmdev.DialTCP(strings.TrimPrefix(s.Addr(), "tcp:"), shutdownTimeout); derr == nil {
		_, err = tpm2.Shutdown{ShutdownType: tpm2.TPMSUClear}.Execute(tpmdev.WithDeadline(c, shutdownTimeout))
		c.Close()
		if err != nil {
			err = fmt.Errorf("TPM2_Shutdown on %s: %w", s.Dir, err)
		}
	}
	s.p.stop()
	s.p = nil
	return err
}

// Restart stops swtpm in order and starts it again on the same state:
// PCRs reset, NV indices and seeds survive, like a reboot of the device.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.halt(); err != nil {
		return err
	}
	return s.start(ctx)
}

// Stop shuts the TPM down in order and ends swtpm. The state directory
// is kept unless it was a fresh temporary one. It is idempotent.
func (s *Server) Stop() error {
	err := s.halt()
	if s.tmp != "" {
		os.RemoveAll(s.tmp)
		s.tmp = ""
	}
	return err
}

// Socket is swtpm behind a Unix control socket, the chardev of QEMU's
// tpm-emulator backend (-chardev socket,path=Path -tpmdev emulator).
// QEMU initializes and starts the TPM through it.
type Socket struct {
	Path string // the control socket
	Dir  string // the state directory (absolute)

	cleanup []func()
}

// StartSocket runs swtpm on cfg.StateDir with its control socket in a new
// short temporary directory (socket paths are limited to 108 bytes), and
// waits for the socket.
func StartSocket(ctx context.Context, cfg Config) (_ *Socket, err error) {
	sockDir, err := os.MkdirTemp("", "mcinit-tpm-")
	if err != nil {
		return nil, err
	}
	s := &Socket{Path: filepath.Join(sockDir, "sock")}
	s.cleanup = append(s.cleanup, func() { os.RemoveAll(sockDir) })
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	if cfg.StateDir == "" {
		cfg.StateDir = filepath.Join(sockDir, "state")
	}
	tmp, err := cfg.prepare()
	if tmp != "" {
		s.cleanup = append(s.cleanup, func() { os.RemoveAll(tmp) })
	}
	if err != nil {
		return nil, err
	}
	s.Dir = cfg.StateDir
	p, err := cfg.start("--ctrl", "type=unixio,path="+s.Path)
	if err != nil {
		return nil, err
	}
	s.cleanup = append(s.cleanup, p.stop)
	for {
		if _, err := os.Stat(s.Path); err == nil {
			return s, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("swtpm exited before creating its socket: %s", p.output())
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for swtpm: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop ends swtpm, letting it write its state, and removes the socket and
// a temporary state. It is idempotent.
func (s *Socket) Stop() {
	for i := len(s.cleanup) - 1; i >= 0; i-- {
		s.cleanup[i]()
	}
	s.cleanup = nil
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b.Len() > 64<<10 { // swtpm's diagnostics are short; keep memory bounded
		return len(p), nil
	}
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
