package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mcinit/mcinit/tpmdev/swtpm"
)

// Machine describes one QEMU boot.
type Machine struct {
	Name   string // names the serial log file in LogDir; "boot" if empty
	Arch   string // amd64 (q35) or arm64 (virt)
	Kernel string // kernel image (see Kernel)
	Initrd string // initramfs, optional
	Disk   string // raw disk image as a virtio-blk-pci drive, optional
	// DiskSnapshot discards the guest's writes to Disk (QEMU snapshot=on).
	DiskSnapshot bool
	// Append is added to the kernel command line after the harness's own
	// "console=<serial> panic=-1 printk.time=1" (and, on x86, no_timer_check).
	Append string
	SMBIOS []string // each passed as -smbios (x86_64), e.g. "type=1,manufacturer=X,product=Y"
	DTB    string   // device tree passed with -dtb (aarch64)
	TPM    bool     // attach a swtpm TPM 2.0 (tpm-tis / tpm-tis-device)
	// TPMStateDir keeps the TPM's state across boots; a fresh temporary
	// state is used when empty.
	TPMStateDir string
	// TPMLog, when set, is a file where swtpm logs every command it
	// receives (see ParseTPMLog), to count the TPM commands of a boot.
	TPMLog   string
	MemoryMB int           // default 512
	Timeout  time.Duration // default 180 s; the boot is killed after it
	// Icount makes guest time count instructions (-icount shift=0,sleep=off)
	// for reproducible timing in benchmarks.
	Icount    bool
	ExtraArgs []string // appended to QEMU's arguments
	// Firmware, when set, boots through UEFI firmware from Disk's EFI
	// System Partition; Initrd and DTB are then unused. A Kernel is then
	// an EFI image the firmware loads from QEMU (fw_cfg) before the disk,
	// with Append verbatim as its load options: the command line a boot
	// entry would pass.
	Firmware *Firmware
	LogDir   string // where <Name>.log (the serial console) is written, optional
	// Console types on the guest's serial console (QEMU's stdin), step
	// by step as the expected text appears; see Result.Typed.
	Console []ConsoleStep
}

// Outcome says how a boot ended.
type Outcome string

// Outcomes. PoweredOff is the normal end of a testinit boot.
const (
	PoweredOff Outcome = "powered-off"
	Rebooted   Outcome = "rebooted" // the guest rebooted (QEMU exits: -no-reboot)
	Halted     Outcome = "halted"   // the guest halted; the harness stopped QEMU
	Panicked   Outcome = "panicked" // kernel panic (panic=-1 reboots, QEMU exits)
	TimedOut   Outcome = "timed-out"
	// NoBoot: the firmware found nothing it would start (see FirmwareNoBoot);
	// the harness stopped QEMU.
	NoBoot Outcome = "firmware-no-boot"
	Exited Outcome = "exited" // QEMU exited without a recognised guest ending
)

// Result is what one boot produced.
type Result struct {
	*Log
	Outcome Outcome
	Serial  []byte // the whole serial console output
	LogPath string // the serial log file, when LogDir was set
	Elapsed time.Duration
	// ReportAt is the wall time from QEMU's start until testinit's report
	// began on the console (zero if it never did): with firmware, from
	// firmware start to the real init's first line.
	ReportAt time.Duration
	QEMUArgs []string
	Stderr   string // QEMU's and swtpm's diagnostics
	// Typed is how many of Machine.Console's steps were typed: fewer than
	// all when the boot ended before a step's Expect appeared.
	Typed int
}

// Boot runs the machine until the guest powers off, reboots, halts,
// panics, or the timeout passes. An error means the boot could not be run
// at all (missing tools, bad machine); how the guest fared is in Outcome.
func Boot(ctx context.Context, m Machine) (*Result, error) {
	return run(ctx, m, "")
}

// DumpDTB writes the device tree QEMU generates for m (an aarch64 virt
// machine) to out, with the same memory and devices (TPM included) as a
// boot of m would have, so the tree can be edited and passed back as DTB.
func DumpDTB(ctx context.Context, m Machine, out string) error {
	ga, err := GoArch(m.Arch)
	if err != nil {
		return err
	}
	if ga != "arm64" {
		return fmt.Errorf("DumpDTB: %s has no device tree (arm64 only)", ga)
	}
	m.DTB = ""
	r, err := run(ctx, m, out)
	if err != nil {
		return err
	}
	if _, err := os.Stat(out); err != nil {
		return fmt.Errorf("DumpDTB: qemu wrote no tree: %v: %s", err, r.Stderr)
	}
	return nil
}

func run(ctx context.Context, m Machine, dumpDTB string) (*Result, error) {
	ga, err := GoArch(m.Arch)
	if err != nil {
		return nil, err
	}
	if m.Kernel == "" && m.Firmware == nil {
		return nil, errors.New("machine has no kernel and no firmware")
	}
	if m.Firmware != nil && m.Disk == "" {
		return nil, errors.New("firmware boot without a disk")
	}
	if m.Timeout <= 0 {
		m.Timeout = 180 * time.Second
	}
	if m.MemoryMB <= 0 {
		m.MemoryMB = 512
	}
	if m.Name == "" {
		m.Name = "boot"
	}
	var stderr lockedBuffer

	ctx, cancel := context.WithTimeout(ctx, m.Timeout)
	defer cancel()

	var tpmSock string
	if m.TPM {
		sw, err := swtpm.StartSocket(ctx, swtpm.Config{StateDir: m.TPMStateDir, LogFile: m.TPMLog, Output: &stderr})
		if err != nil {
			return nil, err
		}
		defer sw.Stop()
		tpmSock = sw.Path
	}

	args := qemuArgs(ga, m, tpmSock, dumpDTB)
	if m.Firmware != nil {
		dir, err := os.MkdirTemp("", "mcinit-fw-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		fw, err := firmwareArgs(ga, m.Firmware, dir)
		if err != nil {
			return nil, err
		}
		args = append(fw, args...)
	}
	bin := "qemu-system-x86_64"
	if ga == "arm64" {
		bin = "qemu-system-aarch64"
	}
	res := &Result{QEMUArgs: append([]string{bin}, args...)}

	var logFile *os.File
	if m.LogDir != "" && dumpDTB == "" {
		if err := os.MkdirAll(m.LogDir, 0o755); err != nil {
			return nil, err
		}
		res.LogPath = filepath.Join(m.LogDir, m.Name+".log")
		if logFile, err = os.Create(res.LogPath); err != nil {
			return nil, err
		}
		defer logFile.Close()
		fmt.Fprintf(logFile, "# %s\n", strings.Join(res.QEMUArgs, " "))
	}

	cmd := exec.Command(bin, args...)
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// An os.Pipe rather than StdoutPipe: the reader must see EOF before
	// Wait, and Wait must not close the read end under it.
	stdout, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer stdout.Close()
	cmd.Stdout = pw
	// The serial line's input: QEMU's stdin (-serial stdio), a pipe the
	// harness types into when the machine has console steps.
	var stdinR, stdinW *os.File
	if len(m.Console) > 0 {
		if stdinR, stdinW, err = os.Pipe(); err != nil {
			return nil, err
		}
		defer stdinW.Close()
		cmd.Stdin = stdinR
	}
	start := time.Now()
	err = cmd.Start()
	pw.Close()
	if stdinR != nil {
		stdinR.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}

	// Copy the console, watching for a halt: QEMU keeps running after a
	// guest halt, so the harness stops it instead of waiting for the timeout.
	var serial lockedBuffer
	halted := make(chan Outcome, 1)
	copied := make(chan struct{})
	var reportAt time.Duration
	go func() {
		defer close(copied)
		reportAt = watchConsole(stdout, &serial, logFile, halted, start)
	}()

	typed := make(chan int, 1)
	typeCtx, stopTyping := context.WithCancel(ctx)
	defer stopTyping()
	if stdinW != nil {
		go func() { typed <- typeConsole(typeCtx, serial.Bytes, stdinW, m.Console) }()
	} else {
		typed <- 0
	}

	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	var ended Outcome
	select {
	case err = <-waitErr:
	case ended = <-halted:
		time.Sleep(200 * time.Millisecond) // let the last lines through
		kill(cmd)
		err = <-waitErr
	case <-ctx.Done():
		ended = TimedOut
		kill(cmd)
		err = <-waitErr
	}
	<-copied
	stopTyping()
	res.Typed = <-typed
	res.Elapsed = time.Since(start)
	res.ReportAt = reportAt
	res.Serial = serial.Bytes()
	res.Log = ParseLog(res.Serial)
	res.Stderr = stderr.String()
	if logFile != nil && ended == TimedOut {
		fmt.Fprintf(logFile, "\n# harness: timed out after %v\n", m.Timeout)
	}

	switch {
	case ended != "":
		res.Outcome = ended
	case res.Has(linePanic):
		res.Outcome = Panicked
	case res.Has(linePowerDown):
		res.Outcome = PoweredOff
	case res.Has(lineRestart):
		res.Outcome = Rebooted
	default:
		res.Outcome = Exited
	}
	if res.Outcome == Exited && err != nil && dumpDTB == "" {
		return res, fmt.Errorf("%s: %v: %s", bin, err, strings.TrimSpace(res.Stderr))
	}
	if dumpDTB != "" && err != nil {
		return res, fmt.Errorf("%s dumpdtb: %v: %s", bin, err, strings.TrimSpace(res.Stderr))
	}
	return res, nil
}

func qemuArgs(ga string, m Machine, tpmSock, dumpDTB string) []string {
	console := "ttyS0"
	var a []string
	switch ga {
	case "amd64":
		mach := "q35"
		if m.Firmware != nil && m.Firmware.SMM {
			mach += ",smm=on"
		}
		a = []string{"-M", mach, "-cpu", "max"}
	case "arm64":
		console = "ttyAMA0"
		mach := "virt"
		if m.Firmware != nil {
			// Without this AAVMF hands the kernel ACPI and SMBIOS tables
			// and no device tree: QEMU's virt board would then identify by
			// DMI ("QEMU Virtual Machine") instead of its device tree.
			mach += ",acpi=off"
		}
		if dumpDTB != "" {
			mach += ",dumpdtb=" + dumpDTB
		}
		a = []string{"-M", mach, "-cpu", "max"}
	}
	a = append(a, "-accel", "tcg", "-m", fmt.Sprint(m.MemoryMB), "-smp", "1",
		"-nodefaults", "-no-user-config", "-display", "none", "-nic", "none",
		"-no-reboot", "-serial", "stdio", "-monitor", "none")
	if m.Firmware != nil && m.Kernel != "" {
		a = append(a, "-kernel", m.Kernel)
		if m.Append != "" {
			a = append(a, "-append", m.Append)
		}
	}
	if m.Firmware == nil {
		a = append(a, "-kernel", m.Kernel)
		if m.Initrd != "" {
			a = append(a, "-initrd", m.Initrd)
		}
		a = append(a, "-append", strings.TrimSpace("console="+console+" panic=-1 printk.time=1 "+timerCheck[ga]+m.Append))
	}
	if m.Disk != "" {
		drive := "file=" + m.Disk + ",format=raw,if=none,id=d0,cache=unsafe"
		if m.DiskSnapshot {
			drive += ",snapshot=on"
		}
		a = append(a, "-drive", drive, "-device", "virtio-blk-pci,drive=d0")
	}
	for _, s := range m.SMBIOS {
		a = append(a, "-smbios", s)
	}
	if m.DTB != "" && m.Firmware == nil {
		a = append(a, "-dtb", m.DTB)
	}
	if tpmSock != "" {
		dev := "tpm-tis"
		if ga == "arm64" {
			dev = "tpm-tis-device"
		}
		a = append(a, "-chardev", "socket,id=chrtpm,path="+tpmSock,
			"-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", dev+",tpmdev=tpm0")
	}
	if m.Icount {
		a = append(a, "-icount", "shift=0,sleep=off")
	}
	return append(a, m.ExtraArgs...)
}

// timerCheck is on every direct boot's command line on x86: under TCG on
// a loaded host the kernel's IO-APIC timer check can miss its ticks and
// panic ("IO-APIC + timer doesn't work!"). The parameter is x86's only.
var timerCheck = map[string]string{"amd64": "no_timer_check "}

// stopLines end a boot when they appear on the console: QEMU keeps running
// after them.
var stopLines = []struct {
	line    string
	outcome Outcome
}{{lineHalted, Halted}, {FirmwareNoBoot, NoBoot}}

// watchConsole copies QEMU's serial output to buf (and log), sending on
// halted when the kernel reports a halt or the firmware gives up. It
// returns when testinit's report began, as time since start.
func watchConsole(r io.Reader, buf *lockedBuffer, log io.Writer, halted chan<- Outcome, start time.Time) (reportAt time.Duration) {
	chunk := make([]byte, 32<<10)
	var tail []byte // spans chunk boundaries for the halt line
	sent := false
	for {
		n, err := r.Read(chunk)
		if n > 0 {
			if buf.Len() < 64<<20 {
				buf.Write(chunk[:n])
			}
			if log != nil {
				log.Write(chunk[:n])
			}
			tail = append(tail, chunk[:n]...)
			if reportAt == 0 && bytes.Contains(tail, []byte(ReportBegin)) {
				reportAt = time.Since(start)
			}
			for _, st := range stopLines {
				if !sent && bytes.Contains(tail, []byte(st.line)) {
					halted <- st.outcome
					sent = true
				}
			}
			if len(tail) > 256 {
				tail = append(tail[:0], tail[len(tail)-256:]...)
			}
		}
		if err != nil {
			return reportAt
		}
	}
}

func kill(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

func (l *lockedBuffer) String() string { return string(l.Bytes()) }
