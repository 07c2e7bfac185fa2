package boot_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcinit/mcinit/boot"
	"github.com/mcinit/mcinit/boot/boottest"
	"github.com/mcinit/mcinit/decide"
	"github.com/mcinit/mcinit/policy"
)

// runShell runs boot.RunShell over a fake environment and returns how it
// ended, the console lines and how long it took.
func runShell(t *testing.T, sh *boottest.Shell, timeout time.Duration) (boot.ShellEnd, []string, time.Duration) {
	t.Helper()
	env := &boottest.Env{Shell: sh}
	log := &boottest.Logger{}
	con := &boot.Console{Logger: log}
	t0 := time.Now()
	end := boot.RunShell(env, con, boot.WhyRefused, "halt", timeout)
	return end, log.Lines, time.Since(t0)
}

func wantLines(t *testing.T, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("console:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

const offer = "mcinit: warning: development rescue shell (boot refused): exit it to halt; it is ended after "

// TestRunShellExits: an operator who exits before the timeout ends the
// shell; nothing is killed.
func TestRunShellExits(t *testing.T) {
	sh := &boottest.Shell{ExitAfter: time.Millisecond}
	end, lines, _ := runShell(t, sh, time.Hour)
	if end != boot.ShellExited || sh.Kills != 0 {
		t.Errorf("end %s, %d kills; want exited, none", end, sh.Kills)
	}
	wantLines(t, lines, []string{offer + "1h0m0s", "mcinit: rescue shell exited"})

	sh = &boottest.Shell{ExitAfter: time.Millisecond, ExitErr: errors.New("exit status 3")}
	end, lines, _ = runShell(t, sh, time.Hour)
	if end != boot.ShellExited {
		t.Errorf("end %s, want exited", end)
	}
	wantLines(t, lines, []string{offer + "1h0m0s", "mcinit: rescue shell exited: exit status 3"})
}

// TestRunShellTimesOut: nobody types; after the timeout (never before)
// the shell is killed, once, and RunShell returns.
func TestRunShellTimesOut(t *testing.T) {
	const timeout = 50 * time.Millisecond
	sh := &boottest.Shell{}
	end, lines, took := runShell(t, sh, timeout)
	if end != boot.ShellTimedOut || sh.Kills != 1 {
		t.Errorf("end %s, %d kills; want timed-out, 1", end, sh.Kills)
	}
	if took < timeout {
		t.Errorf("ended after %v, before the %v timeout", took, timeout)
	}
	wantLines(t, lines, []string{offer + "50ms", "mcinit: warning: rescue shell: not exited within 50ms: ending it"})
}

// TestRunShellSurvivesKill: a shell the kill does not end cannot keep
// the unit from halting.
func TestRunShellSurvivesKill(t *testing.T) {
	const timeout = 50 * time.Millisecond
	sh := &boottest.Shell{Ignore: true}
	end, lines, _ := runShell(t, sh, timeout)
	if end != boot.ShellTimedOut || sh.Kills != 1 {
		t.Errorf("end %s, %d kills; want timed-out, 1", end, sh.Kills)
	}
	wantLines(t, lines, []string{offer + "50ms",
		"mcinit: warning: rescue shell: not exited within 50ms: ending it",
		"mcinit: warning: rescue shell: still running 50ms after the kill; going on without it"})
}

// TestRunShellNone: an image without a shell, and a shell that does not
// start, are said so (after the offer, which comes first so that it
// precedes the shell's prompt) and return at once.
func TestRunShellNone(t *testing.T) {
	end, lines, _ := runShell(t, nil, time.Hour)
	if end != boot.ShellMissing {
		t.Errorf("end %s, want missing", end)
	}
	wantLines(t, lines, []string{offer + "1h0m0s", "mcinit: warning: rescue shell: none in this image"})

	end, lines, _ = runShell(t, &boottest.Shell{StartErr: errors.New("fork/exec /bin/sh: permission denied")}, time.Hour)
	if end != boot.ShellFailed {
		t.Errorf("end %s, want failed", end)
	}
	wantLines(t, lines, []string{offer + "1h0m0s", "mcinit: warning: rescue shell: fork/exec /bin/sh: permission denied"})
}

// TestShellAllowed: development under a policy with rescue_shell, and
// nothing else: never production, never before the decision.
func TestShellAllowed(t *testing.T) {
	pol := func(shell bool, timeout int) *boot.Policy {
		doc, err := policy.Marshal(&policy.Policy{
			Format: policy.FormatVersion, Version: 1, Boards: []string{"qemu-x86_64"},
			Production:  policy.Production{Roots: []policy.Root{{RootHash: strings.Repeat("ab", 32), DataBlocks: 1}}},
			Development: policy.Development{AllowBoards: []string{"qemu-x86_64"}, RescueShell: shell, RescueTimeout: timeout},
		})
		if err != nil {
			t.Fatal(err)
		}
		p, err := policy.Parse(doc)
		if err != nil {
			t.Fatal(err)
		}
		return &boot.Policy{Verified: &policy.Verified{Policy: p}}
	}
	withShell, without := pol(true, 10), pol(false, 0)
	dev := &decide.Decision{Profile: decide.Development, Shell: true}
	prod := &decide.Decision{Profile: decide.Production, Shell: true} // Shell cannot be set in production; checked anyway
	for _, tc := range []struct {
		name string
		p    *boot.Policy
		d    *decide.Decision
		want bool
	}{
		{"development, rescue_shell", withShell, dev, true},
		{"development, no rescue_shell", without, dev, false},
		{"production, rescue_shell", withShell, prod, false},
		{"before the decision", withShell, nil, false},
		{"no verified policy", &boot.Policy{Err: errors.New("bad")}, dev, false},
		{"no policy", nil, dev, false},
	} {
		if got := boot.ShellAllowed(tc.p, tc.d); got != tc.want {
			t.Errorf("%s: ShellAllowed %v, want %v", tc.name, got, tc.want)
		}
		// Neither entry point starts a shell where it is not allowed.
		sh := &boottest.Shell{ExitAfter: time.Millisecond}
		env, con := &boottest.Env{Shell: sh}, &boot.Console{Logger: &boottest.Logger{}}
		if end := boot.RefusalShell(env, con, tc.p, tc.d); (end == boot.ShellExited) != tc.want || sh.Started() != tc.want {
			t.Errorf("%s: RefusalShell %s, started %v", tc.name, end, sh.Started())
		}
		if tc.want {
			if got := con.Warnings[0]; got != "development rescue shell (boot refused): exit it to halt; it is ended after 10s" {
				t.Errorf("%s: offer %q", tc.name, got)
			}
		}
		sh = &boottest.Shell{ExitAfter: time.Millisecond}
		env.Shell = sh
		if end := boot.RequestedShell(env, con, tc.p, tc.d); (end == boot.ShellExited) != tc.want || sh.Started() != tc.want {
			t.Errorf("%s: RequestedShell %s, started %v", tc.name, end, sh.Started())
		}
	}
	// Allowed, but not asked for: no shell before switch_root.
	sh := &boottest.Shell{ExitAfter: time.Millisecond}
	if end := boot.RequestedShell(&boottest.Env{Shell: sh}, &boot.Console{Logger: &boottest.Logger{}}, withShell,
		&decide.Decision{Profile: decide.Development}); end != boot.ShellNotOffered || sh.Started() {
		t.Errorf("RequestedShell without mcinit.shell: %s, started %v", end, sh.Started())
	}
}
