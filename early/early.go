// Package early prepares PID 1's world: the pseudo filesystems and a logger
// that writes "mcinit:" lines into the kernel log, so they carry kernel
// timestamps and reach the console under the kernel's own log level rules.
package early

import (
	"errors"
	"fmt"
	"io"
	"os"
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
type Logger struct {
	mu      sync.Mutex
	kmsg    io.Writer
	console io.Writer
	debug   bool
	level   int // console_loglevel; a line shows when prio < level
}

// NewLogger opens /dev/kmsg; console is where lines go when kmsg is missing
// or hidden (normally os.Stdout, which the kernel connects to /dev/console).
func NewLogger(console io.Writer) *Logger {
	l := &Logger{console: console, level: consoleLogLevel()}
	if f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
		l.kmsg = f
	}
	return l
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
			if _, err := fmt.Fprintf(l.kmsg, "<%d>mcinit: %s\n", prio, line); err == nil {
				shown = prio < l.level
			}
		}
		if !shown && l.console != nil {
			fmt.Fprintf(l.console, "mcinit: %s\n", line)
		}
	}
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
