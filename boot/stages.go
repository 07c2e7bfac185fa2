package boot

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/mcinit/mcinit/boards"
	"github.com/mcinit/mcinit/cmdline"
	"github.com/mcinit/mcinit/decide"
	"github.com/mcinit/mcinit/handoff"
	"github.com/mcinit/mcinit/identity"
	"github.com/mcinit/mcinit/initramfs/layout"
	"github.com/mcinit/mcinit/internal/boundedfile"
	"github.com/mcinit/mcinit/measure"
	"github.com/mcinit/mcinit/policy"
	"github.com/mcinit/mcinit/rollback"
	"github.com/mcinit/mcinit/signing"
	"github.com/mcinit/mcinit/tpmdev"
)

// ReadCmdline parses the kernel command line. A line that cannot be read
// or parsed boots with defaults (production) and a warning.
func ReadCmdline(env Env, con *Console) *cmdline.Cmdline {
	raw, err := env.Cmdline()
	if err != nil {
		con.Warn("reading /proc/cmdline: %v (booting with defaults)", err)
	}
	cl, err := cmdline.Parse(raw)
	if err != nil {
		con.Warn("kernel command line: %v (booting with defaults)", err)
		cl = &cmdline.Cmdline{}
	}
	// Flag warnings are reported by the decision, once.
	con.SetDebug(cl.Flags().Debug)
	con.Debugf("command line: %q", strings.TrimSpace(raw))
	return cl
}

// Identify reads the board identity; without one the boot goes on with
// the architecture alone (the generic board, if the policy allows it).
func Identify(env Env, con *Console) identity.Identity {
	id, err := env.Identity()
	if err != nil {
		con.Warn("reading the board identity: %v", err)
		id = identity.Identity{Arch: runtime.GOARCH}
	}
	con.Printf("identity: %s", id)
	return id
}

// MatchBoard matches the identity against the image's board files. It
// allows the generic board: modules are needed to read the disk and the
// TPM; whether the policy accepts a generic board is the decision's job.
// /init cannot change its own command line (the UKI builder puts the
// board's kernel parameters there), so a boot without them is warned about.
func MatchBoard(image fs.FS, id identity.Identity, cl *cmdline.Cmdline, con *Console) (*boards.Board, error) {
	sub, err := fs.Sub(image, layout.BoardsDir)
	if err != nil {
		return nil, fmt.Errorf("board definitions: %v", err)
	}
	set, err := boards.Load(sub)
	if err != nil {
		return nil, fmt.Errorf("board definitions: %v", err)
	}
	board, err := set.Match(id, true)
	if err != nil {
		return nil, fmt.Errorf("board: %v", err)
	}
	con.Printf("board: %s", board.Name)
	for _, p := range board.MissingParams(paramText(cl)) {
		con.Warn("board %s needs kernel parameter %q, which is not on the command line", board.Name, p)
	}
	return board, nil
}

// paramText is the command line's kernel parameters, as name or name=value
// words without the kernel's quotes.
func paramText(cl *cmdline.Cmdline) string {
	var b strings.Builder
	for _, p := range cl.Params {
		b.WriteString(p.Name)
		if p.HasValue {
			b.WriteString("=" + p.Value)
		}
		b.WriteByte(' ')
	}
	return b.String()
}

// LoadModules loads the board's modules for profile: "" for the ones every
// boot needs before the decision, "development" for the development root's.
func LoadModules(env Env, con *Console, board *boards.Board, profile string) error {
	return StartModules(env, board, profile).Wait(con)
}

// ModuleLoad is a board's modules loading in the background.
type ModuleLoad struct {
	board, profile string
	count          int
	done           chan struct{}
	err            error         // set before done closes
	took           time.Duration // set before done closes
	reported       bool
}

// StartModules starts loading the board's modules for profile (see
// LoadModules) and returns at once. Module loading is kernel work that
// needs nothing from the policy; /init verifies the policy and measures
// while it runs, and waits (Wait) before it needs a device a module may
// provide: the disks, or a TPM that is not there yet.
func StartModules(env Env, board *boards.Board, profile string) *ModuleLoad {
	mods := board.ModulesFor(profile)
	l := &ModuleLoad{board: board.Name, profile: profile, count: len(mods), done: make(chan struct{})}
	if len(mods) == 0 {
		close(l.done)
		return l
	}
	go func() {
		t0 := time.Now()
		l.err = env.LoadModules(mods)
		l.took = time.Since(t0)
		close(l.done)
	}()
	return l
}

// Finish waits until the load has ended, reporting nothing: a refusal's
// path, so no module is still loading once the pipeline has returned.
func (l *ModuleLoad) Finish() { <-l.done }

// Wait waits until the modules are loaded, prints the result once, and
// returns the refusal cause when loading failed.
func (l *ModuleLoad) Wait(con *Console) error {
	<-l.done
	if l.err != nil {
		return fmt.Errorf("loading modules for board %s: %v", l.board, l.err)
	}
	if !l.reported && l.count > 0 {
		l.reported = true
		what := "modules"
		if l.profile != "" {
			what = l.profile + " modules"
		}
		con.Printf("%s: %d loaded in %v", what, l.count, l.took.Round(time.Millisecond))
	}
	return nil
}

// Policy is what the image presents: the raw files, the trusted keys, and
// the verified policy or why there is none.
type Policy struct {
	Raw      []byte
	Keys     *signing.KeySet
	Verified *policy.Verified
	Err      error // why Verified is nil
}

// ReadPolicy reads and verifies the image's policy. It never fails: a
// policy that does not verify is measured before the boot refuses, so a
// verifier sees what was presented.
func ReadPolicy(image fs.FS) *Policy {
	raw, rerr := boundedfile.Read(image, layout.PolicyFile, policy.MaxPolicySize)
	sig, serr := boundedfile.Read(image, layout.SigFile, signing.MaxSignatureFile)
	p := &Policy{Raw: raw}
	keys, kerr := fs.Sub(image, layout.KeysDir)
	if kerr == nil {
		p.Keys, kerr = signing.LoadKeySet(keys)
	}
	switch {
	case rerr != nil:
		p.Err = fmt.Errorf("no policy: %v", rerr)
	case serr != nil:
		p.Err = fmt.Errorf("no policy signature: %v", serr)
	case kerr != nil:
		p.Err = fmt.Errorf("trusted keys: %v", kerr)
	default:
		p.Verified, p.Err = policy.VerifyPolicy(raw, sig, p.Keys)
	}
	return p
}

// RequiresTPM is the policy's tpm_required; before a policy verified, a
// TPM is required.
func (p *Policy) RequiresTPM() bool {
	return p.Verified == nil || p.Verified.Policy.Production.RequiresTPM()
}

// PCR is the PCR /init measures into.
func (p *Policy) PCR() int {
	if p.Verified == nil {
		return policy.DefaultPCR
	}
	return p.Verified.Policy.PCRIndex()
}

// TPM is the boot's TPM, every command bounded by a deadline; nil when
// none works.
type TPM struct {
	*tpmdev.TPM
	closer transport.TPMCloser
}

// Close closes the device; closing twice is harmless.
func (t *TPM) Close() error {
	if t == nil || t.closer == nil {
		return nil
	}
	c := t.closer
	t.closer = nil
	return c.Close()
}

// OpenMeasurement opens the TPM and measures the policy bytes and the key
// set, whatever they are, then refuses a policy that did not verify or a
// missing TPM the policy requires. A TPM that is not there yet may need a
// module of mods (a TPM on SPI or I2C, a firmware TPM): then the TPM is
// opened again once mods have loaded.
func OpenMeasurement(env Env, con *Console, p *Policy, mods *ModuleLoad) (*Measurer, *TPM, error) {
	pcr := p.PCR()
	var tpm *TPM
	dev, terr := env.OpenTPM()
	if terr != nil && mods != nil {
		if err := mods.Wait(con); err != nil {
			return nil, nil, err
		}
		dev, terr = env.OpenTPM()
	}
	if terr != nil {
		con.Printf("TPM: none (%v)", terr)
	} else {
		tpm = &TPM{TPM: tpmdev.Bound(dev), closer: dev}
	}
	var rec *measure.Recorder
	if tpm != nil {
		var err error
		if banks, berr := env.PCRBanks(pcr); berr == nil {
			rec, err = measure.NewRecorderBanks(tpm.TPM, pcr, banks)
		} else {
			rec, err = measure.NewRecorder(tpm.TPM, pcr)
		}
		if err != nil {
			con.Printf("TPM: %v", err)
			tpm.Close()
			tpm, terr = nil, err
		}
	}
	if tpm == nil {
		var err error
		if rec, err = measure.NewRecorder(nil, pcr); err != nil {
			return nil, nil, err
		}
	}
	m := &Measurer{rec: rec, tpm: tpm != nil, required: p.RequiresTPM(), con: con}
	if err := m.Record(measure.PolicyEvent(p.Raw)); err != nil {
		return m, tpm, err
	}
	if err := m.Record(measure.KeySetEvent(KeyIDs(p.Keys))); err != nil {
		return m, tpm, err
	}
	if p.Err != nil {
		return m, tpm, fmt.Errorf("policy: %v", p.Err)
	}
	v := p.Verified
	con.Printf("policy: version %d verified (%d signatures), digest %s",
		v.Policy.Version, len(v.SignedBy), hex.EncodeToString(v.Digest[:])[:16])
	if tpm == nil && v.Policy.Production.RequiresTPM() {
		return m, nil, fmt.Errorf("policy requires a TPM and none works: %v", terr)
	}
	return m, tpm, nil
}

// Floor is the rollback floor as read before the decision (Index 0: the
// policy sets no rollback_nv_index).
type Floor = rollback.Floor

// ReadFloor reads the rollback floor the policy names, once (one
// TPM2_NV_Read). A policy that asks for rollback protection without a
// working TPM refuses.
func ReadFloor(tpm *TPM, p *policy.Policy) (Floor, error) {
	index := p.Production.RollbackNVIndex
	if index == 0 {
		return Floor{}, nil
	}
	if tpm == nil {
		return Floor{Index: index}, errors.New("policy asks for rollback protection and no TPM works")
	}
	f, err := rollback.Read(tpm, index)
	if err != nil {
		return f, fmt.Errorf("reading the rollback floor: %v", err)
	}
	return f, nil
}

// MeasureBoard measures the matched board and the identity.
func MeasureBoard(m *Measurer, board *boards.Board, id identity.Identity) error {
	return m.Record(boardEvent(board.Name, BoardSource(board), id))
}

// Decide applies the decision rules (package decide) to the facts. now is
// the real-time clock: untrusted, it can only void grants (decide.Input).
func Decide(v *policy.Verified, board string, id identity.Identity, cl *cmdline.Cmdline, floor Floor, grants []*policy.Grant, now time.Time) (*decide.Decision, error) {
	d, err := decide.Decide(decide.Input{
		Now:        now,
		Policy:     v,
		Board:      board,
		DeviceID:   id.DeviceID(),
		Cmdline:    cl,
		Grants:     grants,
		Floor:      floor.Version,
		FloorKnown: floor.Written,
	})
	var r *decide.Refusal
	if errors.As(err, &r) {
		return nil, errors.New(r.Cause)
	}
	if err != nil {
		return nil, fmt.Errorf("decision: %v", err)
	}
	return d, nil
}

// MeasureDecision prints the decision's warnings and measures it, and
// the grant that unlocked development when one did, before the root it
// selects is touched.
func MeasureDecision(m *Measurer, con *Console, d *decide.Decision, grants Grants) error {
	for _, w := range d.Warnings {
		con.Warn("%s", w)
	}
	var used *Grant
	if d.Reason == decide.ReasonDevGrant {
		if used = grants.Used(d); used == nil {
			return errors.New("decision: development by a grant that was not read")
		}
	}
	if err := m.Record(DecisionEvent(d.Facts)); err != nil {
		return err
	}
	if used != nil {
		if err := m.Record(GrantEvent(used.Ref())); err != nil {
			return err
		}
	}
	con.Printf("profile: %s (requested %s, reason %s)", d.Profile, d.Request, d.Reason)
	if used != nil {
		con.Printf("development unlocked by grant %s (sha256 %s)", used.Where, used.Ref().SHA256[:16])
	}
	return nil
}

// MeasureRoot measures the root that was set up, before anything from it runs.
func MeasureRoot(m *Measurer, r *Root) error { return m.Record(measure.RootEvent(r.Measured)) }

// SettleFloor ends the rollback work with the floor ReadFloor read: a
// production boot raises it to the policy version, and every boot
// write-locks it until the next reboot (one or two TPM commands). A
// production boot refuses when either fails. A development boot whose lock
// failed goes on, since nothing it boots is trusted, but the booted system
// could then rewrite the floor: the failure is measured (a failure event
// before the separator, so no verifier classifies the boot) and the
// console says what follows.
func SettleFloor(tpm *TPM, m *Measurer, con *Console, p *policy.Policy, floor Floor, d *decide.Decision) error {
	if floor.Index == 0 {
		return nil
	}
	production := d.Profile == decide.Production
	err := floor.Settle(tpm, p.Version, production)
	switch {
	case err == nil:
		return nil
	case production:
		return fmt.Errorf("settling the rollback floor at version %d: %v", p.Version, err)
	}
	cause := fmt.Sprintf("rollback floor %#x not locked: %v", floor.Index, err)
	con.Warn("%s: the booted development system can rewrite the floor until the next reboot, so the next production boot may accept an older policy; this boot is measured as failed and no verifier will classify it", cause)
	if err := m.Fail(cause); err != nil {
		return fmt.Errorf("%s, and measuring it failed: %v", cause, err)
	}
	return nil
}

// MeasureSeparator ends /init's measurements.
func MeasureSeparator(m *Measurer) error { return m.Record(measure.SeparatorEvent()) }

// Summary is what the booted system learns in /run/mcinit.
func Summary(p *Policy, board *boards.Board, id identity.Identity, d *decide.Decision, r *Root, tpm *TPM, con *Console) handoff.Summary {
	v := p.Verified
	return handoff.Summary{
		Profile:       string(d.Profile),
		Request:       string(d.Request),
		Reason:        string(d.Reason),
		Board:         board.Name,
		Identity:      id.String(),
		DeviceID:      id.DeviceID(),
		PolicyVersion: v.Policy.Version,
		PolicyDigest:  hex.EncodeToString(v.Digest[:]),
		Root:          r.Description,
		RootHash:      r.RootHash,
		PCR:           v.Policy.PCRIndex(),
		TPM:           tpm != nil,
		Warnings:      con.Warnings,
	}
}

// LockModules forbids module loading in production when the policy says so.
func LockModules(env Env, p *policy.Policy, d *decide.Decision) error {
	if d.Profile == decide.Production && p.Production.LocksModules() {
		return env.LockModules()
	}
	return nil
}
