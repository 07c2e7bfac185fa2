// Command init is mcinit's PID 1 in the initramfs. It strings the stages
// of package boot together, in boot order, over the running system
// (package osenv). Every refusal is one console line
// "mcinit: refusing to boot: <cause>", measured when the TPM works, then a
// halt. There is no path from a failure to the development profile.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcinit/mcinit/boot"
	"github.com/mcinit/mcinit/boot/osenv"
	"github.com/mcinit/mcinit/decide"
	"github.com/mcinit/mcinit/early"
)

// The real init in the root image, as most distributions place it.
const realInit = "/sbin/init"

func main() {
	start := bootTime()
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "mcinit: init must run as PID 1")
		os.Exit(1)
	}
	early.ScrubEnv() // the environment is the untrusted command line's
	// Modules load while the policy is verified and measured (package
	// boot). With one P, a goroutine blocked in a TPM command holds it
	// until the runtime's monitor takes it back, up to 10 ms later, so
	// nothing overlaps on a one-CPU board; a second P lets the kernel
	// schedule both.
	runtime.GOMAXPROCS(max(2, runtime.NumCPU()))
	if err := early.Mount(); err != nil {
		fmt.Printf("mcinit: refusing to boot: %v\n", err)
		halt()
	}
	con := &boot.Console{Logger: early.NewLogger(os.Stdout)}
	env := &osenv.Env{Log: con}
	s := &state{}
	err := run(env, con, s, start)
	// run returns only when the boot cannot go on.
	if err == nil {
		err = errors.New("switch_root returned")
	}
	refuse(env, con, s, err)
	halt()
}

// state is what a refusal needs to know about the boot so far.
type state struct {
	mods     *boot.ModuleLoad // nil until the modules start loading
	m        *boot.Measurer
	policy   *boot.Policy
	decision *decide.Decision
}

func run(env boot.Env, con *boot.Console, s *state, start time.Duration) (err error) {
	cl := boot.ReadCmdline(env, con)
	id := boot.Identify(env, con)
	board, err := boot.MatchBoard(env.Image(), id, cl, con)
	if err != nil {
		return err
	}
	mods := boot.StartModules(env, board, "")
	s.mods = mods
	s.policy = boot.ReadPolicy(env.Image())
	m, tpm, err := boot.OpenMeasurement(env, con, s.policy, mods)
	s.m = m
	if err != nil {
		return err
	}
	pol := s.policy.Verified.Policy
	floor, err := boot.ReadFloor(tpm, pol)
	if err != nil {
		return err
	}
	grants := boot.ReadGrants(env.Image(), s.policy.Keys, con)
	if boot.WantsDiskGrants(pol, cl) {
		if err := mods.Wait(con); err != nil {
			return err
		}
		grants = boot.ReadDiskGrants(env.Disks(), con, s.policy.Keys, pol, grants, boot.RootWait(board))
	}
	if err := boot.MeasureBoard(m, board, id); err != nil {
		return err
	}
	now := time.Now()
	d, err := boot.Decide(s.policy.Verified, board.Name, id, cl, floor, grants.Policy(), now)
	if err != nil {
		return err
	}
	s.decision = d
	boot.ExplainGrants(con, grants, d, pol.Development.AllowGrants, now)
	if err := boot.MeasureDecision(m, con, d, grants); err != nil {
		return err
	}
	if err := mods.Wait(con); err != nil {
		return err
	}
	if d.Profile == decide.Development {
		// overlayfs and the upper's filesystem: never in production.
		if err := boot.LoadModules(env, con, board, string(decide.Development)); err != nil {
			return err
		}
	}
	root, err := boot.SetupRoot(env.Disks(), con, boot.RootSetup{Policy: pol, Decision: d, Cmdline: cl, Wait: boot.RootWait(board)})
	if err != nil {
		return err
	}
	if err := boot.MeasureRoot(m, root); err != nil {
		return err
	}
	initPath, err := env.FindInit(boot.NewRoot, realInit)
	if err != nil {
		return err
	}
	if err := boot.SettleFloor(tpm, m, con, pol, floor, d); err != nil {
		return err
	}
	if err := boot.MeasureSeparator(m); err != nil {
		return err
	}
	sum := boot.Summary(s.policy, board, id, d, root, tpm, con)
	sum.InitStartNS, sum.HandoffNS = int64(start), int64(bootTime())
	if err := env.WriteHandoff(sum, m.Log()); err != nil {
		return err
	}
	if err := boot.LockModules(env, pol, d); err != nil {
		return err
	}
	tpm.Close()
	con.Printf("handoff: %s profile, board %s, root %s, %d ms in /init",
		sum.Profile, sum.Board, sum.Root, (sum.HandoffNS-sum.InitStartNS)/1e6)
	boot.RequestedShell(env, con, s.policy, d)
	return env.SwitchRoot(boot.NewRoot, initPath, realInit,
		[]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "MCINIT_PROFILE=" + sum.Profile})
}

// refuse is the end of a boot that cannot go on: one line naming the
// cause and a measured failure event (when measuring works); the caller
// halts. In development a rescue shell may be offered first, when the
// policy allows it, for at most its rescue_timeout; never in production.
func refuse(env boot.Env, con *boot.Console, s *state, err error) {
	cause := err.Error()
	con.Critf("refusing to boot: %s", cause)
	_ = s.m.Fail(cause) // best effort: the TPM may be what failed
	if s.mods != nil {
		// Modules may still be loading: the cause is on the console
		// already; the shell and the halt come once they are done.
		s.mods.Finish()
	}
	boot.RefusalShell(env, con, s.policy, s.decision)
}

// bootTime is CLOCK_BOOTTIME, comparable with kernel log timestamps.
func bootTime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// halt stops the machine for good. PID 1 must never exit (the kernel would
// panic, and some boards reboot on panic into the same refusal loop).
func halt() {
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_HALT)
	for {
		time.Sleep(time.Hour)
	}
}
