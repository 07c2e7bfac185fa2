package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mcinit/mcinit/e2e/fixture"
	"github.com/mcinit/mcinit/e2e/harness"
)

// The rescue shell, driven through the serial console: the harness types
// into QEMU's serial line (Machine.Console) and reads the console back.
// gosh (u-root's shell, built with its plain line reader) prompts "$ ".

const (
	rescueCommand = "echo rescue-$((6*7))\n" // arithmetic, so the typed line's echo cannot match
	rescueOutput  = "rescue-42"
	rescuePrompt  = "$ "
	// offerRequested and offerRefused are the console's offer lines, up
	// to the timeout, which each test appends.
	offerRequested = "mcinit: warning: development rescue shell (mcinit.shell requested): exit it to continue the boot; it is ended after "
	offerRefused   = "mcinit: warning: development rescue shell (boot refused): exit it to halt; it is ended after "
	shellExited    = "mcinit: rescue shell exited"
	// upperMissing is the refusal of a development boot whose policy wants
	// an upper partition the default disk does not have.
	upperMissing = `development upper partition "` + fixture.UpperLabel + `": no such partition after 10s`
)

// useShell types a command into the offered shell, waits for its output,
// and exits.
func useShell(offer string) []harness.ConsoleStep {
	return []harness.ConsoleStep{
		{Expect: offer},
		{Expect: rescuePrompt, Send: rescueCommand},
		{Expect: rescueOutput, Send: "exit\n"},
	}
}

// consoleLine finds the console line that is exactly text (a kernel line
// after its timestamp), also when what the tty wrote without a newline
// (the shell's prompt, the echo of typed text) shares its line. It
// returns the line's index in r.Lines.
func consoleLine(r *harness.Result, text string) (int, harness.Line, bool) {
	for i, ln := range r.Lines {
		if ln.Text == text {
			return i, ln, true
		}
		for j := strings.IndexByte(ln.Text, '['); j > 0; {
			if l := harness.ParseLog([]byte(ln.Text[j:])).Lines; len(l) == 1 && l[0].HasTS && l[0].Text == text {
				return i, l[0], true
			}
			k := strings.IndexByte(ln.Text[j+1:], '[')
			if k < 0 {
				break
			}
			j += 1 + k
		}
	}
	return -1, harness.Line{}, false
}

// wantInOrder checks that each text is a console line, in this order.
func wantInOrder(t *testing.T, r *harness.Result, texts ...string) []harness.Line {
	t.Helper()
	var out []harness.Line
	last := -1
	for _, text := range texts {
		i, ln, ok := consoleLine(r, text)
		if !ok {
			t.Fatalf("no console line %q (outcome %s); log %s", text, r.Outcome, r.LogPath)
		}
		if i <= last {
			t.Errorf("console line %q comes before the line expected before it; log %s", text, r.LogPath)
		}
		last = i
		out = append(out, ln)
	}
	return out
}

// wantOneRefusal checks the refusal is exactly one line with cause, that
// the real init never ran, and that the unit halted.
func wantOneRefusal(t *testing.T, r *harness.Result, cause string) {
	t.Helper()
	n := 0
	for _, ln := range r.Lines {
		if strings.Contains(ln.Text, "mcinit: refusing to boot: ") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d refusal lines, want 1; log %s", n, r.LogPath)
	}
	wantInOrder(t, r, "mcinit: refusing to boot: "+cause)
	if r.ReportComplete || r.Has(harness.ReportBegin) {
		t.Errorf("the real init ran after a refusal")
	}
	if r.Outcome != harness.Halted {
		t.Errorf("outcome %s, want %s", r.Outcome, harness.Halted)
	}
}

// logShell logs the console from the offer on (at most 1 KiB): the
// shell's transcript.
func logShell(t *testing.T, r *harness.Result, offer string) {
	t.Helper()
	s := string(r.Serial)
	i := strings.Index(s, offer)
	if i < 0 {
		return
	}
	s = s[i:]
	if len(s) > 1024 {
		s = s[:1024]
	}
	t.Logf("console from the offer:\n%s", strings.ReplaceAll(s, "\r", ""))
}

// wantTyped checks every console step was typed.
func wantTyped(t *testing.T, r *harness.Result, m harness.Machine) {
	t.Helper()
	if r.Typed != len(m.Console) {
		t.Fatalf("typed %d of %d console steps (outcome %s); log %s", r.Typed, len(m.Console), r.Outcome, r.LogPath)
	}
}

// refusalPolicy is the default policy asking for an upper partition the
// default disk lacks: a development boot refuses after the decision, so
// the rescue shell may be offered.
func refusalPolicy(e *fixture.Env, timeout int) fixture.PolicyParams {
	p := e.DefaultPolicy()
	p.Upper, p.UpperLabel = "partition", fixture.UpperLabel
	p.RescueShell, p.RescueTimeout = true, timeout
	return p
}

// TestRescueShellRequested: development with mcinit.shell. The shell
// appears before switch_root, runs a typed command, exits, and the
// development boot goes on.
func TestRescueShellRequested(t *testing.T) {
	t.Parallel()
	e := env(t, "amd64")
	m := e.Machine("rescue-requested", e.Initrd, e.Disk, fixture.DevSerial, "mcinit.profile=development mcinit.shell")
	m.Console = useShell(offerRequested + "5m0s")
	m.Timeout = 300 * time.Second
	r := boot(t, m)
	logShell(t, r, offerRequested)
	wantTyped(t, r, m)
	wantInOrder(t, r, "mcinit: profile: development (requested development, reason dev-allowed-device)",
		offerRequested+"5m0s", rescueOutput, shellExited, harness.ReportBegin)
	wantReport(t, r, map[string]string{"profile": "development", "root_writable": "yes"})
}

// TestRescueShellRefusal: a refusal in development under a policy with
// rescue_shell: one refusal line, then the shell, which runs a typed
// command; exiting it halts the unit.
func TestRescueShellRefusal(t *testing.T) {
	t.Parallel()
	e := env(t, "amd64")
	initrd, err := e.PolicyVariant(context.Background(), "rescue-refusal", refusalPolicy(e, 0))
	if err != nil {
		t.Fatal(err)
	}
	m := e.Machine("rescue-refusal", initrd, e.Disk, fixture.DevSerial, "mcinit.profile=development")
	m.Console = useShell(offerRefused + "5m0s")
	m.Timeout = 300 * time.Second
	r := boot(t, m)
	logShell(t, r, offerRefused)
	wantTyped(t, r, m)
	wantOneRefusal(t, r, upperMissing)
	wantInOrder(t, r, "mcinit: refusing to boot: "+upperMissing, offerRefused+"5m0s", rescueOutput, shellExited)
}

// TestRescueShellTimeout: the same refusal with rescue_timeout = 10 and
// nobody at the console: the shell is ended after 10 s (never before, in
// the guest's clock) and the unit halts, with the one refusal line.
func TestRescueShellTimeout(t *testing.T) {
	t.Parallel()
	e := env(t, "amd64")
	initrd, err := e.PolicyVariant(context.Background(), "rescue-timeout", refusalPolicy(e, 10))
	if err != nil {
		t.Fatal(err)
	}
	r := boot(t, e.Machine("rescue-timeout", initrd, e.Disk, fixture.DevSerial, "mcinit.profile=development"))
	logShell(t, r, offerRefused)
	wantOneRefusal(t, r, upperMissing)
	lines := wantInOrder(t, r, "mcinit: refusing to boot: "+upperMissing, offerRefused+"10s",
		"mcinit: warning: rescue shell: not exited within 10s: ending it")
	if !strings.Contains(string(r.Serial), offerRefused+"10s\r\n"+rescuePrompt) && !strings.Contains(string(r.Serial), offerRefused+"10s\n"+rescuePrompt) {
		t.Errorf("no shell prompt after the offer; log %s", r.LogPath)
	}
	// printk's clock and the Go timer's (CLOCK_MONOTONIC) may differ by a
	// few microseconds over 10 s; 50 ms covers that and nothing else.
	if !lines[1].HasTS || !lines[2].HasTS || lines[2].TS-lines[1].TS < 10*time.Second-50*time.Millisecond {
		t.Errorf("the shell was ended %v after the offer, before the 10s timeout", lines[2].TS-lines[1].TS)
	}
	if r.Has(shellExited) {
		t.Error("the console says the shell exited; nobody exited it")
	}
}

// TestRescueShellProduction: production never offers a shell, whatever the
// command line asks: the console says mcinit.shell is ignored, text typed
// on the serial line runs nowhere (the tty only echoes it), and the
// production boot goes on.
func TestRescueShellProduction(t *testing.T) {
	t.Parallel()
	e := env(t, "amd64")
	const ignored = "mcinit: warning: mcinit.shell ignored: only honoured in development"
	m := e.Machine("rescue-production", e.Initrd, e.Disk, fixture.OtherSerial, "mcinit.shell")
	m.Console = []harness.ConsoleStep{{Expect: ignored, Send: rescueCommand}}
	r := boot(t, m)
	wantTyped(t, r, m)
	wantInOrder(t, r, ignored, "mcinit: profile: production (requested none, reason default)")
	wantReport(t, r, map[string]string{"profile": "production", "root_writable": "no", "modules_disabled": "1"})
	for _, bad := range []string{"rescue shell", rescueOutput} {
		if r.Has(bad) {
			t.Errorf("production console has %q; log %s", bad, r.LogPath)
		}
	}
}

// TestArm64RescueShellRequested: the requested shell on aarch64 -M virt,
// through the PL011 serial line (ttyAMA0): development by board, a typed
// command and its output, exit, and the development boot goes on.
func TestArm64RescueShellRequested(t *testing.T) {
	t.Parallel()
	e := env(t, "arm64")
	p := e.DefaultPolicy()
	p.DevBoards = []string{e.Board}
	initrd, err := e.PolicyVariant(context.Background(), "arm64-rescue", p)
	if err != nil {
		t.Fatal(err)
	}
	m := e.Machine("arm64-rescue-requested", initrd, e.Disk, "", "mcinit.profile=development mcinit.shell")
	m.Console = useShell(offerRequested + "5m0s")
	m.Timeout = 400 * time.Second
	r := boot(t, m)
	logShell(t, r, offerRequested)
	wantTyped(t, r, m)
	wantInOrder(t, r, "mcinit: profile: development (requested development, reason dev-allowed-board)",
		offerRequested+"5m0s", rescueOutput, shellExited, harness.ReportBegin)
	wantReport(t, r, map[string]string{"profile": "development", "root_writable": "yes"})
}
