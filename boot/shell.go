package boot

import (
	"errors"
	"time"

	"github.com/mcinit/mcinit/decide"
)

// ShellEnd is how a rescue shell offer ended.
type ShellEnd string

// How RunShell ends.
const (
	ShellNotOffered ShellEnd = "not-offered" // production, no rescue_shell, or nothing asked for one
	ShellMissing    ShellEnd = "missing"     // the image carries no shell
	ShellFailed     ShellEnd = "failed"      // it would not start
	ShellExited     ShellEnd = "exited"      // the operator left it
	ShellTimedOut   ShellEnd = "timed-out"   // rescue_timeout passed; it was killed
)

// Why a shell is offered, as the console says it.
const (
	WhyRequested = "mcinit.shell requested"
	WhyRefused   = "boot refused"
)

// shellKillWait bounds the wait for a killed shell to be reaped (never
// longer than the timeout itself), so that a process the kill could not
// end never keeps the unit from halting.
const shellKillWait = 5 * time.Second

// ShellAllowed says whether this boot may offer the rescue shell: only in
// development, under a policy that sets rescue_shell. Production never
// does, whatever the command line says; neither does a boot that refused
// before the decision, since it cannot know its profile.
func ShellAllowed(p *Policy, d *decide.Decision) bool {
	if d == nil || d.Profile != decide.Development || p == nil || p.Verified == nil {
		return false
	}
	return p.Verified.Policy.Development.RescueShell
}

// RequestedShell runs the shell mcinit.shell asked for, just before
// switch_root; the boot goes on however it ends. The decision has already
// said why a request it ignores is ignored (decide.Decision.Shell).
func RequestedShell(env Env, con *Console, p *Policy, d *decide.Decision) ShellEnd {
	if !ShellAllowed(p, d) || !d.Shell {
		return ShellNotOffered
	}
	return RunShell(env, con, WhyRequested, "continue the boot", p.Verified.Policy.Development.RescueWait())
}

// RefusalShell runs the rescue shell after a refusal, when ShellAllowed;
// the unit halts however it ends.
func RefusalShell(env Env, con *Console, p *Policy, d *decide.Decision) ShellEnd {
	if !ShellAllowed(p, d) {
		return ShellNotOffered
	}
	return RunShell(env, con, WhyRefused, "halt", p.Verified.Policy.Development.RescueWait())
}

// RunShell runs the rescue shell on the console until it exits or timeout
// passes; then it kills the shell's session. then names what follows the
// shell, for the operator.
func RunShell(env Env, con *Console, why, then string, timeout time.Duration) ShellEnd {
	// Said before the shell starts, so the line is on the console before
	// the shell's prompt.
	con.Warn("development rescue shell (%s): exit it to %s; it is ended after %v", why, then, timeout)
	sh, err := env.StartShell()
	switch {
	case errors.Is(err, ErrNoShell):
		con.Warn("rescue shell: none in this image")
		return ShellMissing
	case err != nil:
		con.Warn("rescue shell: %v", err)
		return ShellFailed
	}
	done := make(chan error, 1)
	go func() { done <- sh.Wait() }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			con.Printf("rescue shell exited: %v", err)
		} else {
			con.Printf("rescue shell exited")
		}
		return ShellExited
	case <-t.C:
	}
	con.Warn("rescue shell: not exited within %v: ending it", timeout)
	if err := sh.Kill(); err != nil {
		con.Warn("rescue shell: ending it: %v", err)
	}
	wait := min(shellKillWait, timeout)
	k := time.NewTimer(wait)
	defer k.Stop()
	select {
	case <-done:
	case <-k.C:
		con.Warn("rescue shell: still running %v after the kill; going on without it", wait)
	}
	return ShellTimedOut
}
