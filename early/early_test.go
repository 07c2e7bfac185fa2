package early

import (
	"bytes"
	"strings"
	"testing"
)

func TestLoggerShowsHiddenLinesOnConsole(t *testing.T) {
	var kmsg, console bytes.Buffer
	l := &Logger{kmsg: &kmsg, console: &console, level: 4} // "quiet"
	l.Printf("board: %s", "x")
	l.Critf("refusing to boot: %s", "why")
	l.Debugf("not shown")
	if got := kmsg.String(); got != "<5>mcinit: board: x\n<2>mcinit: refusing to boot: why\n" {
		t.Errorf("kmsg got %q", got)
	}
	// Notice (5) is hidden at console level 4, so it is echoed; crit (2) is
	// shown by the kernel itself and must not appear twice.
	if got := console.String(); got != "mcinit: board: x\n" {
		t.Errorf("console got %q", got)
	}
}

func TestLoggerWithoutKmsg(t *testing.T) {
	var console bytes.Buffer
	l := &Logger{console: &console, level: 7}
	l.SetDebug(true)
	l.Warnf("a\nb")
	l.Debugf("d")
	if got := console.String(); got != "mcinit: a\nmcinit: b\nmcinit: d\n" {
		t.Errorf("console got %q", got)
	}
	if strings.Contains(console.String(), "<") {
		t.Error("priority prefix leaked to the console")
	}
}
