package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"golang.org/x/sys/unix"

	"github.com/mcinit/mcinit/boards"
	"github.com/mcinit/mcinit/cmdline"
	"github.com/mcinit/mcinit/decide"
	"github.com/mcinit/mcinit/early"
	"github.com/mcinit/mcinit/handoff"
	"github.com/mcinit/mcinit/identity"
	"github.com/mcinit/mcinit/initramfs/layout"
	"github.com/mcinit/mcinit/kmodules"
	"github.com/mcinit/mcinit/measure"
	"github.com/mcinit/mcinit/policy"
	"github.com/mcinit/mcinit/rollback"
)

// The real init in the root image, as most distributions place it.
const realInit = "/sbin/init"

// boot carries the facts gathered so far; each stage adds to it.
type boot struct {
	log   *early.Logger
	start time.Duration

	cl       *cmdline.Cmdline
	rawCl    string // /proc/cmdline as read
	flags    cmdline.Flags
	id       identity.Identity
	board    *boards.Board
	modRoot  string // /lib/modules/<release>
	verified *policy.Verified
	keys     *policy.KeySet
	rec      *measure.Recorder
	tpm      transport.TPMCloser
	decision *decide.Decision
	root     rootResult
	warnings []string
}

// refusal is the cause printed after "refusing to boot: ".
type refusal struct{ cause string }

func (r *refusal) Error() string { return r.cause }

func refusef(format string, a ...any) error { return &refusal{fmt.Sprintf(format, a...)} }

func (b *boot) run() error {
	b.readCmdline()
	b.identify()
	if err := b.loadModules(); err != nil {
		return err
	}
	if err := b.policyAndMeasure(); err != nil {
		return err
	}
	if err := b.decide(); err != nil {
		return err
	}
	root, err := b.setupRoot()
	if err != nil {
		return err
	}
	b.root = root
	if err := b.rec.Record(root.event); err != nil && b.tpmRequired() {
		return refusef("measuring the root: %v", err)
	}
	return b.handoff()
}

func (b *boot) readCmdline() {
	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		b.warn("reading /proc/cmdline: %v (booting with defaults)", err)
	}
	cl, err := cmdline.Parse(string(raw))
	if err != nil {
		b.warn("kernel command line: %v (booting with defaults)", err)
		cl = &cmdline.Cmdline{}
	}
	b.cl = cl
	b.rawCl = string(raw)
	b.flags = cl.Flags()
	// Flag warnings are reported by the decision, once.
	b.log.SetDebug(b.flags.Debug)
	b.log.Debugf("command line: %q", strings.TrimSpace(string(raw)))
}

func (b *boot) identify() {
	id, err := identity.Read("/")
	if err != nil {
		b.warn("reading the board identity: %v", err)
		id = identity.Identity{Arch: runtime.GOARCH}
	}
	b.id = id
	b.log.Printf("identity: %s", id)
}

// loadModules matches the board and loads its modules. The match allows the
// generic board here (modules are needed to read the disk and the TPM);
// whether the policy accepts a generic board is the decision's job.
func (b *boot) loadModules() error {
	set, err := boards.Load(os.DirFS("/" + layout.BoardsDir))
	if err != nil {
		return refusef("board definitions: %v", err)
	}
	board, err := set.Match(b.id, true)
	if err != nil {
		return refusef("board: %v", err)
	}
	b.board = board
	b.log.Printf("board: %s", board.Name)
	// /init cannot change its own command line; the UKI builder puts the
	// board's parameters there, and a boot without them is warned about.
	for _, p := range board.MissingParams(b.rawCl) {
		b.warn("board %s needs kernel parameter %q, which is not on the command line", board.Name, p)
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return refusef("uname: %v", err)
	}
	b.modRoot = path.Join("/lib/modules", unix.ByteSliceToString(uts.Release[:]))
	return b.loadBoardModules("")
}

// loadBoardModules loads the board's modules for profile ("" = those every
// boot needs, before the decision).
func (b *boot) loadBoardModules(profile string) error {
	mods := b.board.ModulesFor(profile)
	if len(mods) == 0 {
		return nil
	}
	t0 := time.Now()
	if err := kmodules.Load(b.modRoot, mods); err != nil {
		return refusef("loading modules for board %s: %v", b.board.Name, err)
	}
	what := "modules"
	if profile != "" {
		what = profile + " modules"
	}
	b.log.Printf("%s: %d loaded in %v", what, len(mods), time.Since(t0).Round(time.Millisecond))
	return nil
}

// policyAndMeasure reads the policy, opens the TPM and measures the raw
// policy bytes and the key set, then verifies. A policy that does not
// verify is measured too (so a verifier sees what was presented) before the
// refusal.
func (b *boot) policyAndMeasure() error {
	raw, rerr := policy.ReadFile(os.DirFS("/"), layout.PolicyFile, policy.MaxPolicySize)
	sig, serr := policy.ReadFile(os.DirFS("/"), layout.SigFile, 64<<10)
	ks, kerr := policy.LoadKeySet(os.DirFS("/" + layout.KeysDir))
	b.keys = ks

	var verr error
	switch {
	case rerr != nil:
		verr = fmt.Errorf("no policy: %v", rerr)
	case serr != nil:
		verr = fmt.Errorf("no policy signature: %v", serr)
	case kerr != nil:
		verr = fmt.Errorf("trusted keys: %v", kerr)
	default:
		b.verified, verr = policy.VerifyPolicy(raw, sig, ks)
	}

	pcr := policy.DefaultPCR
	if b.verified != nil {
		pcr = b.verified.Policy.PCRIndex()
	}
	tpm, terr := measure.OpenTPM()
	if terr != nil {
		b.log.Printf("TPM: none (%v)", terr)
	} else {
		b.tpm = tpm
	}
	var tt transport.TPM
	if b.tpm != nil {
		tt = b.tpm
	}
	rec, err := measure.NewRecorder(tt, pcr)
	if err != nil {
		b.log.Printf("TPM: %v", err)
		rec, _ = measure.NewRecorder(nil, pcr)
		b.tpm.Close()
		b.tpm = nil
	}
	b.rec = rec

	// Measure before acting: the raw bytes, whatever they are.
	var ids []string
	threshold := 0
	if ks != nil {
		for _, k := range ks.Keys() {
			ids = append(ids, k.ID)
		}
		threshold = ks.Threshold
	}
	if err := b.record(measure.PolicyEvent(raw)); err != nil {
		return err
	}
	if err := b.record(measure.KeySetEvent(ids, threshold)); err != nil {
		return err
	}
	if verr != nil {
		return refusef("policy: %v", verr)
	}
	b.log.Printf("policy: version %d verified (%d signatures), digest %s",
		b.verified.Policy.Version, len(b.verified.SignedBy), hex.EncodeToString(b.verified.Digest[:])[:16])
	if b.tpm == nil && b.verified.Policy.Production.RequiresTPM() {
		return refusef("policy requires a TPM and none works: %v", terr)
	}
	return nil
}

// record extends one event; failing to measure is fatal when a TPM is
// required (before the policy is known it is required by default).
func (b *boot) record(ev measure.Event) error {
	if err := b.rec.Record(ev); err != nil {
		if b.tpmRequired() {
			return refusef("measuring %s: %v", ev.Tag, err)
		}
		b.warn("measuring %s: %v", ev.Tag, err)
	}
	return nil
}

func (b *boot) tpmRequired() bool {
	return b.verified == nil || b.verified.Policy.Production.RequiresTPM()
}

func (b *boot) decide() error {
	in := decide.Input{
		Policy:   b.verified,
		Board:    b.board.Name,
		DeviceID: b.id.DeviceID(),
		Cmdline:  b.cl,
		Now:      time.Now(), // the RTC: untrusted, only voids grants (decide.Input)
	}
	pol := b.verified.Policy
	if pol.Production.RollbackNVIndex != 0 && b.tpm != nil {
		floor, ok, err := rollback.ReadFloor(b.tpm, pol.Production.RollbackNVIndex)
		if err != nil {
			return refusef("reading the rollback floor: %v", err)
		}
		in.Floor, in.FloorKnown = floor, ok
	} else if pol.Production.RollbackNVIndex != 0 {
		return refusef("policy asks for rollback protection and no TPM works")
	}
	grants, problems := policy.VerifyGrantsFS(os.DirFS("/"), layout.GrantsDir, b.keys)
	for _, p := range problems {
		b.warn("grant ignored: %v", p)
	}
	in.Grants = grants

	if err := b.record(measure.BoardEventFrom(b.board.Name, b.id.String(), boardSource(b.board))); err != nil {
		return err
	}
	d, err := decide.Decide(in)
	if err != nil {
		var r *decide.Refusal
		if errors.As(err, &r) {
			return refusef("%s", r.Cause)
		}
		return refusef("decision: %v", err)
	}
	b.decision = d
	for _, w := range d.Warnings {
		b.warn("%s", w)
	}
	// Measure the decision before the root it selects is touched.
	if err := b.record(measure.DecisionEvent(d.Request, d.Profile, d.Reason)); err != nil {
		return err
	}
	b.log.Printf("profile: %s (requested %s, reason %s)", d.Profile, d.Request, d.Reason)
	return nil
}

func (b *boot) handoff() error {
	pol := b.verified.Policy
	production := b.decision.Profile == decide.Production
	if production && pol.Production.RollbackNVIndex != 0 {
		if err := rollback.RaiseFloor(b.tpm, pol.Production.RollbackNVIndex, pol.Version); err != nil {
			return refusef("raising the rollback floor to %d: %v", pol.Version, err)
		}
	}
	if pol.Production.RollbackNVIndex != 0 && b.tpm != nil {
		if err := rollback.Lock(b.tpm, pol.Production.RollbackNVIndex); err != nil && production {
			return refusef("locking the rollback floor: %v", err)
		}
	}
	if err := b.record(measure.SeparatorEvent()); err != nil {
		return err
	}
	sum := handoff.Summary{
		Profile:       string(b.decision.Profile),
		Request:       string(b.decision.Request),
		Reason:        string(b.decision.Reason),
		Board:         b.board.Name,
		Identity:      b.id.String(),
		DeviceID:      b.id.DeviceID(),
		PolicyVersion: pol.Version,
		PolicyDigest:  hex.EncodeToString(b.verified.Digest[:]),
		Root:          b.root.description,
		RootHash:      b.root.rootHash,
		PCR:           pol.PCRIndex(),
		TPM:           b.tpm != nil,
		Warnings:      b.warnings,
		InitStartNS:   int64(b.start),
		HandoffNS:     int64(bootTime()),
	}
	if err := handoff.Write(handoff.Dir, sum, b.rec.Log()); err != nil {
		return refusef("%v", err)
	}
	if production && pol.Production.LocksModules() {
		if err := handoff.LockModules(); err != nil {
			return refusef("%v", err)
		}
	}
	if b.tpm != nil {
		b.tpm.Close()
	}
	b.log.Printf("handoff: %s profile, board %s, root %s, %d ms in /init",
		sum.Profile, sum.Board, sum.Root, (sum.HandoffNS-sum.InitStartNS)/1e6)
	if b.decision.Profile == decide.Development && b.flags.Shell && pol.Development.RescueShell {
		b.rescueShell("mcinit.shell requested")
	}
	env := []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "MCINIT_PROFILE=" + sum.Profile}
	if err := rootSwitch(newRoot, realInit, env); err != nil {
		return refusef("%v", err)
	}
	return nil
}

// refuse ends the boot: one line naming the cause, a measured failure event
// (when measuring works), then halt. In development a rescue shell may be
// offered instead, when the policy allows it; never in production.
func (b *boot) refuse(err error) {
	cause := err.Error()
	b.log.Critf("refusing to boot: %s", cause)
	if b.rec != nil {
		_ = b.rec.Record(measure.FailureEvent(cause))
	}
	if b.decision != nil && b.decision.Profile == decide.Development &&
		b.verified != nil && b.verified.Policy.Development.RescueShell {
		b.rescueShell("boot failed")
	}
	halt()
}

func (b *boot) warn(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	b.warnings = append(b.warnings, msg)
	b.log.Warnf("warning: %s", msg)
}

// boardSource is the provenance the board event measures.
func boardSource(bd *boards.Board) measure.BoardSource {
	if !bd.Provenance.Imported() {
		return measure.BoardSource{}
	}
	return measure.BoardSource{Commit: bd.Provenance.Commit, Profile: bd.Provenance.Profile}
}
