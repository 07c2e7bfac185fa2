package early

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"strings"
	"testing"
)

// kmsgOpens is a /dev/kmsg stand-in recording every line and how many
// opens wrote lines.
type kmsgOpens struct {
	bytes.Buffer
	opens, closes int
}

func (k *kmsgOpens) open() (io.WriteCloser, error) {
	k.opens++
	return kmsgFile{k}, nil
}

type kmsgFile struct{ k *kmsgOpens }

func (f kmsgFile) Write(p []byte) (int, error) { return f.k.Write(p) }
func (f kmsgFile) Close() error                { f.k.closes++; return nil }

func TestLoggerShowsHiddenLinesOnConsole(t *testing.T) {
	var kmsg kmsgOpens
	var console bytes.Buffer
	l := &Logger{kmsg: kmsg.open, console: &console, level: 4} // "quiet"
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

// The kernel drops lines beyond 10 per 5 s on one open of /dev/kmsg while
// write reports success; a refusal after a few warnings must still show.
// Every line gets its own open, so no budget is ever shared.
func TestLoggerOpensKmsgPerLine(t *testing.T) {
	var kmsg kmsgOpens
	l := &Logger{kmsg: kmsg.open, level: 7}
	for i := 0; i < 25; i++ {
		l.Warnf("warning %d", i)
	}
	l.Critf("refusing to boot: %s", "why")
	if kmsg.opens != 26 || kmsg.closes != 26 {
		t.Errorf("%d opens, %d closes for 26 lines; want one each per line", kmsg.opens, kmsg.closes)
	}
	if !strings.HasSuffix(kmsg.String(), "<2>mcinit: refusing to boot: why\n") {
		t.Errorf("refusal not written last: %q", kmsg.String())
	}
}

// A kmsg that cannot be opened or written sends the line to the console.
func TestLoggerKmsgFailureFallsBackToConsole(t *testing.T) {
	var console bytes.Buffer
	l := &Logger{kmsg: func() (io.WriteCloser, error) { return nil, errors.New("gone") }, console: &console, level: 7}
	l.Critf("refusing to boot: %s", "why")
	if got := console.String(); got != "mcinit: refusing to boot: why\n" {
		t.Errorf("console got %q", got)
	}
	console.Reset()
	l.kmsg = func() (io.WriteCloser, error) { return failingWriter{}, nil }
	l.Critf("refusing to boot: %d", 2)
	if got := console.String(); got != fmt.Sprintf("mcinit: refusing to boot: %d\n", 2) {
		t.Errorf("console got %q", got)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("EIO") }
func (failingWriter) Close() error              { return nil }

// The kernel hands init every unknown command-line word with "=" as its
// environment; none of it may reach /init's runtime.
func TestScrubEnv(t *testing.T) {
	saved := os.Environ()
	defer func() {
		os.Clearenv()
		for _, kv := range saved {
			k, v, _ := strings.Cut(kv, "=")
			os.Setenv(k, v)
		}
		debug.SetGCPercent(100)
	}()
	os.Setenv("GODEBUG", "panicnil=1")
	os.Setenv("GOGC", "off")
	os.Setenv("mcinit_test.x", "1")
	debug.SetGCPercent(-1) // what GOGC=off gives at start-up
	debug.SetMemoryLimit(1 << 20)
	ScrubEnv()
	if env := os.Environ(); len(env) != 0 {
		t.Errorf("environment left: %q", env)
	}
	if old := debug.SetGCPercent(100); old != 100 {
		t.Errorf("GC percent %d after ScrubEnv, want 100", old)
	}
	if lim := debug.SetMemoryLimit(-1); lim != math.MaxInt64 {
		t.Errorf("memory limit %d after ScrubEnv, want none", lim)
	}
}
