// Package swtpmtest runs swtpm on the host for interop tests: one swtpm
// process per test, on free TCP ports, with its own state directory, so Go
// (go-tpm over TCP) and tpm2-tools (the swtpm TCTI) talk to the same TPM.
package swtpmtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/mcinit/mcinit/internal/testenv"
	"github.com/mcinit/mcinit/measure"
)

// TPM is one running swtpm.
type TPM struct {
	Dir  string // state directory (kept across Restart)
	Port int    // TPM command port; the control port is Port+1

	t   testing.TB
	cmd *exec.Cmd
}

// Banks, when set, is passed to swtpm_setup --pcr-banks (e.g.
// "sha1,sha256,sha384") to allocate those banks before the first start.
type Options struct {
	Banks string
}

// Start runs swtpm in a fresh state directory; it is stopped when the test
// ends. The test is skipped only when swtpm is not installed.
func Start(t testing.TB, opt Options) *TPM {
	t.Helper()
	testenv.RequireTool(t, "swtpm", "swtpm")
	s := &TPM{Dir: t.TempDir(), t: t}
	if opt.Banks != "" {
		out, err := exec.Command("swtpm_setup", "--tpm2", "--tpmstate", s.Dir, "--pcr-banks", opt.Banks,
			"--overwrite", "--config", "/dev/null").CombinedOutput()
		if err != nil {
			t.Fatalf("swtpm_setup --pcr-banks %s: %v\n%s", opt.Banks, err, out)
		}
	}
	s.start()
	t.Cleanup(s.Stop)
	return s
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
	return 0, fmt.Errorf("no free port pair")
}

func (s *TPM) start() {
	s.t.Helper()
	var lastErr error
	for try := 0; try < 5; try++ {
		port, err := FreePortPair()
		if err != nil {
			s.t.Fatal(err)
		}
		cmd := exec.Command("swtpm", "socket", "--tpm2",
			"--server", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port),
			"--ctrl", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port+1),
			"--tpmstate", "dir="+s.Dir,
			"--flags", "not-need-init,startup-clear",
			"--log", "file="+filepath.Join(s.Dir, "swtpm.log"))
		if err := cmd.Start(); err != nil {
			s.t.Fatalf("swtpm: %v", err)
		}
		if waitPort(port, 5*time.Second) && waitPort(port+1, time.Second) {
			s.cmd, s.Port = cmd, port
			return
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		lastErr = fmt.Errorf("swtpm did not listen on %d", port)
	}
	s.t.Fatal(lastErr)
}

func waitPort(port int, d time.Duration) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// Stop ends the swtpm process (idempotent).
func (s *TPM) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT) // a paused process must still die
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Pause freezes swtpm (SIGSTOP): a hung TPM. Resume undoes it.
func (s *TPM) Pause() {
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(syscall.SIGSTOP)
	}
}

// Resume continues a paused swtpm (SIGCONT).
func (s *TPM) Resume() {
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
	}
}

// Restart stops swtpm and starts it again on the same state: PCRs reset,
// NV indices and seeds survive, like a reboot of the same device.
func (s *TPM) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// TCTI is the tpm2-tools TCTI string for this TPM.
func (s *TPM) TCTI() string {
	return fmt.Sprintf("swtpm:host=127.0.0.1,port=%d", s.Port)
}

// Tool runs a tpm2-tools command against this TPM and returns its stdout.
// swtpm serves one connection at a time: close Go connections first.
func (s *TPM) Tool(args ...string) (string, error) {
	s.t.Helper()
	testenv.RequireTool(s.t, args[0], "tpm2-tools")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "TPM2TOOLS_TCTI="+s.TCTI())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// Addr is the -tpm argument of the mcinit verbs for this TPM.
func (s *TPM) Addr() string { return fmt.Sprintf("tcp:127.0.0.1:%d", s.Port) }

// Open connects go-tpm to the TPM command port.
func (s *TPM) Open() transport.TPMCloser {
	s.t.Helper()
	t, err := measure.OpenTPMAt(s.Addr())
	if err != nil {
		s.t.Fatalf("connect to swtpm: %v", err)
	}
	return t
}
