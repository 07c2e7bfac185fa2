// Package early prepares PID 1's world: the pseudo filesystems and a logger
// that writes "mcinit:" lines into the kernel log, so they carry kernel
// timestamps and reach the console under the kernel's own log level rules.
package early

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

type mountSpec struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

var baseMounts = []mountSpec{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
}

// Mount mounts /proc, /sys, /dev and /run. Already-mounted targets are fine
// (EBUSY), so a kernel with devtmpfs.mount=1 does not break it.
func Mount() error {
	for _, m := range baseMounts {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return fmt.Errorf("early: %w", err)
		}
		err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data)
		if err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("early: mount %s on %s: %w", m.fstype, m.target, err)
		}
	}
	return nil
}

// ScrubEnv drops the environment the kernel gave PID 1 and undoes what it
// set in the Go runtime. The kernel turns every command-line word with "="
// that it does not know into an environment variable of init, so the
// untrusted command line could otherwise tune /init: GODEBUG settings
// (parser and crypto behaviour), GOGC=off, GOMEMLIMIT. /init reads nothing
// from its environment and gives the real init and the rescue shell their
// own.
func ScrubEnv() {
	os.Unsetenv("GODEBUG") // the runtime re-reads its settings: the defaults
	os.Clearenv()
	debug.SetGCPercent(100)
	debug.SetMemoryLimit(math.MaxInt64)
}

// Syslog priorities used for kmsg lines.
const (
	prioCrit   = 2
	prioWarn   = 4
	prioNotice = 5
	prioInfo   = 6
)

// Logger writes "mcinit: " lines to /dev/kmsg, and straight to the console
// as well when the kernel's console log level would hide them, so a refusal
// is always visible.
//
// The kernel rate-limits /dev/kmsg writers (printk.devkmsg=ratelimit, the
// default): after 10 lines in 5 s on one open file it drops lines while
// write still succeeds. A boot with a few warnings reaches that, and the
// command line (untrusted) can add warnings at will, so a refusal line
// could vanish. Each line therefore goes through a fresh open of
// /dev/kmsg, whose budget is its own; with printk.devkmsg=off the kernel
// drops every line, so the logger writes to the console instead.
type Logger struct {
	mu      sync.Mutex
	kmsg    func() (io.WriteCloser, error) // nil: no usable kmsg
	console io.Writer
	debug   bool
	level   int // console_loglevel; a line shows when prio < level
}

// NewLogger logs through /dev/kmsg when the kernel accepts lines there;
// console is where lines go when kmsg is missing, off or hidden (normally
// os.Stdout, which the kernel connects to /dev/console).
func NewLogger(console io.Writer) *Logger {
	l := &Logger{console: console, level: consoleLogLevel()}
	if devkmsgEnabled() {
		if f, err := openKmsg(); err == nil {
			f.Close()
			l.kmsg = openKmsg
		}
	}
	return l
}

func openKmsg() (io.WriteCloser, error) {
	return os.OpenFile("/dev/kmsg", os.O_WRONLY, 0) // Go sets O_CLOEXEC itself
}

// devkmsgEnabled reports whether the kernel keeps user lines written to
// /dev/kmsg (printk_devkmsg is not "off"); true when unreadable.
func devkmsgEnabled() bool {
	b, err := os.ReadFile("/proc/sys/kernel/printk_devkmsg")
	return err != nil || strings.TrimSpace(string(b)) != "off"
}

// SetDebug enables Debugf lines (mcinit.debug).
func (l *Logger) SetDebug(on bool) { l.debug = on }

func (l *Logger) write(prio int, format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range strings.Split(msg, "\n") {
		shown := false
		if l.kmsg != nil {
			shown = l.writeKmsg(prio, line) && prio < l.level
		}
		if !shown && l.console != nil {
			fmt.Fprintf(l.console, "mcinit: %s\n", line)
		}
	}
}

// writeKmsg writes one line through its own open of kmsg (see Logger).
func (l *Logger) writeKmsg(prio int, line string) bool {
	w, err := l.kmsg()
	if err != nil {
		return false
	}
	_, err = fmt.Fprintf(w, "<%d>mcinit: %s\n", prio, line)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err == nil
}

// Printf logs an informational line.
func (l *Logger) Printf(format string, a ...any) { l.write(prioNotice, format, a...) }

// Warnf logs a warning (a denied development request, a malformed flag).
func (l *Logger) Warnf(format string, a ...any) { l.write(prioWarn, format, a...) }

// Critf logs a line that must be seen (refusals).
func (l *Logger) Critf(format string, a ...any) { l.write(prioCrit, format, a...) }

// Debugf logs only with mcinit.debug.
func (l *Logger) Debugf(format string, a ...any) {
	if l.debug {
		l.write(prioInfo, format, a...)
	}
}

// consoleLogLevel reads the first field of /proc/sys/kernel/printk; 7 (the
// kernel default) when unreadable.
func consoleLogLevel() int {
	b, err := os.ReadFile("/proc/sys/kernel/printk")
	if err != nil {
		return 7
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 7
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 7
	}
	return n
}
