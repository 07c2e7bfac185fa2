package harness

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// Markers framing testinit's report (cmds/testinit).
const (
	ReportBegin = "MCINIT-TEST-BEGIN"
	ReportEnd   = "MCINIT-TEST-END"
)

// Kernel console lines that tell how a boot ended.
const (
	linePowerDown = "reboot: Power down"
	lineRestart   = "reboot: Restarting system"
	lineHalted    = "reboot: System halted"
	linePanic     = "Kernel panic - not syncing"
)

// Line is one console line, split from its kernel timestamp when it has one.
type Line struct {
	Text  string        // the line without the "[    1.234567] " prefix
	TS    time.Duration // kernel timestamp, valid when HasTS
	HasTS bool
}

// Log is a parsed serial console log.
type Log struct {
	Lines []Line
	// Report holds testinit's key=value lines between the markers; a
	// key.b64=... line is stored under key.b64 as sent (see Value).
	Report map[string]string
	// ReportComplete is true when both markers were seen.
	ReportComplete bool
	// Mcinit holds the lines whose text starts with "mcinit:", in order.
	Mcinit []Line
}

// Limits for parsing untrusted console output.
const (
	maxLines    = 1 << 20
	maxLineSize = 4 << 20
)

// ParseLog splits a serial log into lines, kernel timestamps, testinit's
// report and mcinit's console lines.
func ParseLog(raw []byte) *Log {
	l := &Log{}
	s := string(raw)
	inReport := false
	for len(s) > 0 && len(l.Lines) < maxLines {
		var line string
		line, s, _ = strings.Cut(s, "\n")
		line = strings.TrimRight(line, "\r")
		if len(line) > maxLineSize {
			line = line[:maxLineSize]
		}
		ln := parseLine(line)
		l.Lines = append(l.Lines, ln)
		text := strings.TrimSpace(ln.Text)
		switch {
		case strings.HasSuffix(text, ReportBegin) && !ln.HasTS:
			inReport = true
			l.Report = map[string]string{}
			l.ReportComplete = false
			continue
		case inReport && text == ReportEnd:
			inReport = false
			l.ReportComplete = true
			continue
		}
		if inReport && !ln.HasTS {
			if k, v, ok := strings.Cut(ln.Text, "="); ok && k != "" {
				l.Report[k] = v
			}
		}
		if strings.HasPrefix(text, "mcinit:") {
			l.Mcinit = append(l.Mcinit, Line{Text: text, TS: ln.TS, HasTS: ln.HasTS})
		}
	}
	return l
}

// parseLine splits "[    1.234567] text" into its timestamp and text.
func parseLine(s string) Line {
	if !strings.HasPrefix(s, "[") {
		return Line{Text: s}
	}
	end := strings.IndexByte(s, ']')
	if end < 2 || end > 24 {
		return Line{Text: s}
	}
	ts, ok := parseStamp(strings.TrimSpace(s[1:end]))
	if !ok {
		return Line{Text: s}
	}
	return Line{Text: strings.TrimPrefix(s[end+1:], " "), TS: ts, HasTS: true}
}

// parseStamp parses "seconds.micros" without going through floats.
func parseStamp(s string) (time.Duration, bool) {
	sec, frac, ok := strings.Cut(s, ".")
	if !ok || sec == "" || frac == "" || len(frac) > 9 {
		return 0, false
	}
	n, err := strconv.ParseUint(sec, 10, 32)
	if err != nil {
		return 0, false
	}
	f, err := strconv.ParseUint(frac, 10, 32)
	if err != nil {
		return 0, false
	}
	for i := len(frac); i < 9; i++ {
		f *= 10
	}
	return time.Duration(n)*time.Second + time.Duration(f), true
}

// Value returns report key k, decoding a key.b64 line when that is how it
// was sent.
func (l *Log) Value(k string) (string, bool) {
	if v, ok := l.Report[k]; ok {
		return v, true
	}
	if v, ok := l.Report[k+".b64"]; ok {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return "", false
		}
		return string(b), true
	}
	return "", false
}

// First returns the first line whose text contains substr.
func (l *Log) First(substr string) (Line, bool) {
	for _, ln := range l.Lines {
		if strings.Contains(ln.Text, substr) {
			return ln, true
		}
	}
	return Line{}, false
}

// FirstStamped returns the first timestamped (kernel) line containing substr.
func (l *Log) FirstStamped(substr string) (Line, bool) {
	for _, ln := range l.Lines {
		if ln.HasTS && strings.Contains(ln.Text, substr) {
			return ln, true
		}
	}
	return Line{}, false
}

// Has reports whether any line's text contains substr.
func (l *Log) Has(substr string) bool {
	_, ok := l.First(substr)
	return ok
}

// KmsgInitTS is testinit's own start in kernel time (kmsg_init_ts).
func (l *Log) KmsgInitTS() (time.Duration, bool) {
	v, ok := l.Report["kmsg_init_ts"]
	if !ok {
		return 0, false
	}
	return parseStamp(v)
}

// LineRunInit is the kernel's line as it starts the initramfs's /init.
const LineRunInit = "Run /init as init process"

// InitToRealInit is the interval from the kernel starting /init to
// testinit's own start (kmsg_init_ts), both in kernel time: the time the
// initramfs took to hand over to the real init.
func (l *Log) InitToRealInit() (time.Duration, bool) {
	run, ok := l.FirstStamped(LineRunInit)
	if !ok {
		return 0, false
	}
	ts, ok := l.KmsgInitTS()
	if !ok || ts < run.TS {
		return 0, false
	}
	return ts - run.TS, true
}
