package main

import (
	"crypto"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport/simulator"

	"github.com/mcinit/mcinit/attest"
	"github.com/mcinit/mcinit/boot"
	"github.com/mcinit/mcinit/boot/boottest"
	"github.com/mcinit/mcinit/decide"
	"github.com/mcinit/mcinit/identity"
	"github.com/mcinit/mcinit/initramfs/layout"
	"github.com/mcinit/mcinit/measure"
	"github.com/mcinit/mcinit/policy"
	"github.com/mcinit/mcinit/rollback"
)

// The whole /init pipeline (run and refuse, exactly as main calls them)
// over a fake environment: the image is an fstest.MapFS, the TPM the
// go-tpm simulator, the disks fakes. QEMU keeps what only a kernel shows
// (module loading, dm-verity, switch_root).

const (
	rootA     = "4f2d9c1e8b7a6f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6"
	devSerial = "MCDEV-0001"
	prodSer   = "MCPROD-0042"
	floorIdx  = rollback.DefaultIndex
	debInit   = "/lib/systemd/systemd"
)

// pol is the test policy, written by policy.Marshal: version 3 (or
// version), the board qemu-x86_64 (or boards), root A, and in development
// devSerial listed, grants allowed and a rescue shell (or dev).
type pol struct {
	version     uint64
	boards      []string
	nvIndex     uint32 // production.rollback_nv_index
	tpmOptional bool   // production.tpm_required = false
	dev         *policy.Development
}

func (p pol) String() string {
	d := policy.Development{
		AllowDevices: []policy.Device{{Board: "qemu-x86_64", DeviceID: devSerial}},
		AllowGrants:  true,
		RescueShell:  true,
	}
	if p.dev != nil {
		d = *p.dev
	}
	doc := &policy.Policy{
		Format:  policy.FormatVersion,
		Version: p.version,
		Boards:  p.boards,
		Production: policy.Production{
			Roots:           []policy.Root{{Name: "A", RootHash: rootA, DataBlocks: 1024}},
			RollbackNVIndex: p.nvIndex,
		},
		Development: d,
	}
	if doc.Version == 0 {
		doc.Version = 3
	}
	if doc.Boards == nil {
		doc.Boards = []string{"qemu-x86_64"}
	}
	if p.tpmOptional {
		no := false
		doc.Production.TPMRequired = &no
	}
	b, err := policy.Marshal(doc)
	if err != nil {
		panic(err) // only invalid UTF-8 or a version beyond int64 fail
	}
	return string(b)
}

type bootCase struct {
	policy string // signed into the image; "" = no policy
	image  func(t *testing.T, im *boottest.Image)
	serial string
	vendor string // DMI sys_vendor (default QEMU: board qemu-x86_64)
	line   string
	noTPM  bool
	tpm    func(t *testing.T, tpm *boottest.FaultTPM)
	noInit bool
	noDisk bool
	sysfs  bool // the kernel lists the banks (SHA-256) in sysfs
	// disks adds to the fake disks (after the root's partitions).
	disks func(t *testing.T, im *boottest.Image, env *boottest.Env)
	shell *boottest.Shell
	// tpmAfterModules: the TPM appears only once the board's modules loaded.
	tpmAfterModules bool
	modulesErr      error
}

type bootResult struct {
	env   *boottest.Env
	log   *boottest.Logger
	err   error // nil: the boot reached switch_root
	tpm   *boottest.FaultTPM
	pcr   []byte // SHA-256 PCR 13 after the boot
	floor string
}

func runBoot(t *testing.T, c bootCase) bootResult {
	t.Helper()
	im := boottest.NewImage(t, c.policy)
	if c.image != nil {
		c.image(t, im)
	}
	if c.vendor == "" {
		c.vendor = "QEMU"
	}
	if c.serial == "" {
		c.serial = prodSer
	}
	env := &boottest.Env{
		Files:    im.FS,
		Line:     c.line,
		ID:       identity.Identity{Source: identity.SourceDMI, Arch: "amd64", SysVendor: c.vendor, ProductName: "Standard PC", Serial: c.serial},
		Trees:    map[string]string{"/dev/vda1": rootA},
		InitPath: debInit,
	}
	if !c.noDisk {
		env.Parts = boottest.Disk{RootHash: rootA}.Partitions(t, 1)
	}
	if c.noInit {
		env.InitPath = ""
	}
	if c.disks != nil {
		c.disks(t, im, env)
	}
	if c.sysfs {
		env.Banks = []crypto.Hash{crypto.SHA256}
	}
	env.Shell = c.shell
	env.TPMAfterModules, env.ModulesErr = c.tpmAfterModules, c.modulesErr
	var res bootResult
	if !c.noTPM {
		sim, err := simulator.OpenSimulator()
		if err != nil {
			t.Fatal(err)
		}
		defer sim.Close()
		res.tpm = &boottest.FaultTPM{TPM: sim}
		if c.tpm != nil {
			c.tpm(t, res.tpm)
		}
		res.tpm.Counts = nil
		env.TPM = res.tpm
	}
	res.log = &boottest.Logger{}
	con := &boot.Console{Logger: res.log}
	s := &state{}
	res.err = run(env, con, s, 0)
	if res.err != nil {
		refuse(env, con, s, res.err)
	}
	res.env = env
	if res.tpm != nil {
		tt := res.tpm.TPM
		rsp, err := tpm2.PCRRead{PCRSelectionIn: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{
			{Hash: tpm2.TPMAlgSHA256, PCRSelect: tpm2.PCClientCompatible.PCRs(13)}}}}.Execute(tt)
		if err != nil {
			t.Fatal(err)
		}
		res.pcr = rsp.PCRValues.Digests[0].Buffer
		if v, ok, err := rollback.ReadFloor(tt, floorIdx); err == nil {
			res.floor = fmt.Sprint(v, ok)
		}
	}
	return res
}

// refusal is the refusal cause, "" for a boot that reached switch_root.
func refusal(r bootResult) string {
	if r.err == nil {
		return ""
	}
	return r.err.Error()
}

func (r bootResult) line(prefix string) string {
	for _, l := range r.log.Lines {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func (r bootResult) did(action string) bool {
	for _, a := range r.env.Actions {
		if strings.HasPrefix(a, action) {
			return true
		}
	}
	return false
}

func provisionFloor(initial uint64) func(*testing.T, *boottest.FaultTPM) {
	return func(t *testing.T, tpm *boottest.FaultTPM) {
		if err := rollback.Provision(tpm.TPM, floorIdx, nil, initial); err != nil {
			t.Fatal(err)
		}
	}
}

// predictPCR is the SHA-256 PCR 13 value `mcinit predict` gives for facts.
func predictPCR(t *testing.T, f boot.Facts) []byte {
	t.Helper()
	pr, err := attest.Predict(f.Events(), 13, []crypto.Hash{crypto.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	return pr.Values[crypto.SHA256]
}

// pcrOf replays events into a SHA-256 PCR.
func pcrOf(evs ...measure.Event) []byte {
	return measure.Expected([]crypto.Hash{crypto.SHA256}, evs)[crypto.SHA256]
}

func TestBootProduction(t *testing.T) {
	p := pol{nvIndex: floorIdx}.String()
	r := runBoot(t, bootCase{policy: p, tpm: provisionFloor(0)})
	if r.err != nil {
		t.Fatalf("refused: %v\n%s", r.err, strings.Join(r.log.Lines, "\n"))
	}
	if r.env.Switched != debInit {
		t.Errorf("switched to %q, want %s", r.env.Switched, debInit)
	}
	want := []string{"modules virtio_pci,virtio_blk,dm-mod,dm-verity,erofs", "verity /dev/vda1 /dev/vda2",
		"mount-ro /dev/mapper/mcinit-root /newroot", "init " + debInit, "handoff production", "lock-modules", "switch /newroot " + debInit}
	if got := strings.Join(r.env.Actions, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("actions:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	// One builder: the PCR equals predict's for the same facts.
	id := r.env.ID
	ks := boot.ReadPolicy(r.env.Files).Keys
	ids, thr := boot.KeyIDs(ks)
	f := boot.Facts{PolicyRaw: []byte(p), KeyIDs: ids, Threshold: thr, Board: "qemu-x86_64", Identity: id,
		Decision: decide.Facts{Request: decide.RequestNone, Profile: decide.Production, Reason: decide.ReasonDefault},
		Root:     measure.Root{Kind: measure.RootVerity, RootHash: rootA}}
	if got, want := fmt.Sprintf("%x", r.pcr), fmt.Sprintf("%x", predictPCR(t, f)); got != want {
		t.Errorf("PCR 13 %s, predict %s", got, want)
	}
	if r.floor != "3 true" {
		t.Errorf("floor after the boot: %q, want 3 (raised)", r.floor)
	}
}

// TestBootTPMCommands counts /init's TPM commands on a production boot:
// the six extends, one read of the floor and one lock (plus the write
// when the floor rises), plus TPM2_GetCapability when the kernel does not
// list the banks in sysfs.
func TestBootTPMCommands(t *testing.T) {
	withFloor := pol{nvIndex: floorIdx}.String()
	events := len(measure.Order())
	for _, tc := range []struct {
		name   string
		c      bootCase
		want   int
		counts map[uint32]int
	}{
		{"floor at the policy version", bootCase{policy: withFloor, tpm: provisionFloor(3), sysfs: true}, events + 2,
			map[uint32]int{boottest.CCNVRead: 1, boottest.CCNVWriteLock: 1}},
		{"first boot: the floor is written", bootCase{policy: withFloor, tpm: provisionFloor(0), sysfs: true}, events + 3,
			map[uint32]int{boottest.CCNVRead: 1, boottest.CCNVWrite: 1, boottest.CCNVWriteLock: 1}},
		{"floor raised", bootCase{policy: withFloor, tpm: provisionFloor(2), sysfs: true}, events + 3,
			map[uint32]int{boottest.CCNVRead: 1, boottest.CCNVWrite: 1, boottest.CCNVWriteLock: 1}},
		{"no rollback index", bootCase{policy: pol{}.String(), sysfs: true}, events, nil},
		{"banks from the TPM", bootCase{policy: withFloor, tpm: provisionFloor(3)}, events + 3,
			map[uint32]int{boottest.CCGetCap: 1, boottest.CCNVRead: 1, boottest.CCNVWriteLock: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runBoot(t, tc.c)
			if r.err != nil {
				t.Fatalf("refused: %v", r.err)
			}
			n := r.tpm.Counts
			// bench/tpm.sh reads this line.
			t.Logf("bench|%s|%d|%d|%v", tc.name, r.tpm.Total(), events, n)
			if r.tpm.Total() != tc.want || n[boottest.CCPCRExtend] != events {
				t.Errorf("%d TPM commands (%d extends), want %d", r.tpm.Total(), n[boottest.CCPCRExtend], tc.want)
			}
			for cc, want := range tc.counts {
				if n[cc] != want {
					t.Errorf("command %#x sent %d times, want %d", cc, n[cc], want)
				}
			}
			if r.floor != "3 true" && tc.counts != nil {
				t.Errorf("floor %q after the boot, want 3", r.floor)
			}
		})
	}
}

func TestBootDevelopment(t *testing.T) {
	p := pol{}.String()
	r := runBoot(t, bootCase{policy: p, serial: devSerial, line: "mcinit.profile=development"})
	if r.err != nil {
		t.Fatalf("refused: %v", r.err)
	}
	if r.env.Summary.Profile != "development" || r.env.Summary.Reason != "dev-allowed-device" {
		t.Errorf("summary %+v", r.env.Summary)
	}
	if r.did("lock-modules") {
		t.Error("development locked module loading")
	}
	if !r.did("modules overlay,ext4") || !r.did("overlay /run/mcinit/lower /run/mcinit/upperfs /newroot") {
		t.Errorf("actions %q: want the development modules and the overlay", r.env.Actions)
	}
}

func TestBootDevelopmentDenied(t *testing.T) {
	r := runBoot(t, bootCase{policy: pol{}.String(), line: "mcinit.profile=development"})
	if r.err != nil {
		t.Fatalf("refused: %v", r.err)
	}
	if r.env.Summary.Profile != "production" || r.env.Summary.Reason != "dev-denied" {
		t.Errorf("summary %+v", r.env.Summary)
	}
	if l := r.line("mcinit: warning: development requested but not allowed for board qemu-x86_64 device \"MCPROD-0042\""); l == "" {
		t.Errorf("no denial warning in %q", r.log.Lines)
	}
}

func TestBootGrant(t *testing.T) {
	grant := string(unitGrant(prodSer))
	r := runBoot(t, bootCase{policy: pol{}.String(), line: "mcinit.profile=development", image: func(t *testing.T, im *boottest.Image) {
		im.Sign(t, layout.GrantsDir+"/unit.toml", []byte(grant))
	}})
	if r.err != nil || r.env.Summary.Reason != "dev-allowed-grant" {
		t.Fatalf("err %v summary %+v", r.err, r.env.Summary)
	}
	// The same grant, not signed by a trusted key: a warning, production.
	r = runBoot(t, bootCase{policy: pol{}.String(), line: "mcinit.profile=development", image: func(t *testing.T, im *boottest.Image) {
		im.Sign(t, layout.GrantsDir+"/unit.toml", []byte(grant))
		im.FS[layout.GrantsDir+"/unit.toml"] = &fstest.MapFile{Data: []byte(grant + "# edited\n")}
	}})
	if r.err != nil || r.env.Summary.Reason != "dev-denied" || r.line("mcinit: warning: grant ignored: ") == "" {
		t.Fatalf("tampered grant: err %v summary %+v", r.err, r.env.Summary)
	}
}

// TestBootRefusals is the bad-input matrix: each case refuses with its
// exact cause, measures the failure after exactly the events before it,
// and never reaches the real init.
func TestBootRefusals(t *testing.T) {
	good := pol{}.String()
	floorPol := pol{nvIndex: floorIdx}.String()
	tampered := func(t *testing.T, im *boottest.Image) {
		im.FS[layout.PolicyFile] = &fstest.MapFile{Data: []byte(strings.Replace(good, "version = 3", "version = 4", 1))}
	}
	for _, tc := range []struct {
		name   string
		c      bootCase
		cause  string // exact, or a prefix ending in "…"
		before []measure.Tag
	}{
		{"no policy", bootCase{}, "policy: no policy: open etc/mcinit/policy.toml: file does not exist",
			[]measure.Tag{measure.TagPolicy, measure.TagKeySet}},
		{"tampered policy", bootCase{policy: good, image: tampered}, "policy: policy signature: …",
			[]measure.Tag{measure.TagPolicy, measure.TagKeySet}},
		{"board not covered", bootCase{policy: pol{boards: []string{"intel-nuc"}, dev: &policy.Development{AllowBoards: []string{"intel-nuc"}}}.String()},
			"board qemu-x86_64 is not covered by policy version 3",
			[]measure.Tag{measure.TagPolicy, measure.TagKeySet, measure.TagBoard}},
		{"unknown board", bootCase{policy: good, vendor: "ACME"},
			"board generic-x86_64: …",
			[]measure.Tag{measure.TagPolicy, measure.TagKeySet, measure.TagBoard}},
		{"rollback", bootCase{policy: floorPol, tpm: provisionFloor(5)},
			"policy version 3 is below the rollback floor 5",
			[]measure.Tag{measure.TagPolicy, measure.TagKeySet, measure.TagBoard}},
		{"floor not provisioned", bootCase{policy: floorPol},
			"reading the rollback floor: …",
			[]measure.Tag{measure.TagPolicy, measure.TagKeySet}},
		{"no TPM", bootCase{policy: good, noTPM: true}, "policy requires a TPM and none works: …", nil},
		// Modules load while the policy is verified and measured; a module
		// that fails refuses before any root is touched.
		{"modules fail", bootCase{policy: good, modulesErr: errors.New("module dm_verity: exec format error")},
			"loading modules for board qemu-x86_64: module dm_verity: exec format error",
			[]measure.Tag{measure.TagPolicy, measure.TagKeySet, measure.TagBoard, measure.TagDecision}},
		{"no root", bootCase{policy: good, noDisk: true, image: func(t *testing.T, im *boottest.Image) {
			b := im.FS[layout.BoardsDir+"/qemu-x86_64.toml"].Data
			im.FS[layout.BoardsDir+"/qemu-x86_64.toml"] = &fstest.MapFile{Data: append(b, "root_wait = 1\n"...)}
		}}, "no accepted root image found after 1s: …",
			[]measure.Tag{measure.TagPolicy, measure.TagKeySet, measure.TagBoard, measure.TagDecision}},
		{"no init in the new root", bootCase{policy: floorPol, tpm: provisionFloor(0), noInit: true},
			"no executable /sbin/init in the new root: no such file or directory",
			[]measure.Tag{measure.TagPolicy, measure.TagKeySet, measure.TagBoard, measure.TagDecision, measure.TagRoot}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runBoot(t, tc.c)
			cause := refusal(r)
			if p, ok := strings.CutSuffix(tc.cause, "…"); ok && !strings.HasPrefix(cause, p) || !ok && cause != tc.cause {
				t.Fatalf("cause %q, want %q", cause, tc.cause)
			}
			if l := r.line("mcinit: refusing to boot: "); l != "mcinit: refusing to boot: "+cause {
				t.Errorf("console line %q", l)
			}
			if r.did("switch") || r.did("handoff") || r.did("lock-modules") {
				t.Errorf("a refused boot went on: %q", r.env.Actions)
			}
			if r.tpm == nil {
				return
			}
			// The failure event follows exactly the events before it.
			evs := eventsFor(t, r, tc.before)
			evs = append(evs, measure.FailureEvent(cause))
			if got, want := fmt.Sprintf("%x", r.pcr), fmt.Sprintf("%x", pcrOf(evs...)); got != want {
				t.Errorf("PCR 13 %s, want %s (%v then the failure)", got, want, tc.before)
			}
			if strings.Contains(tc.name, "init") && r.floor != "0 false" {
				t.Errorf("floor %q: a boot refused before the separator must not raise it", r.floor)
			}
		})
	}
}

// eventsFor rebuilds the events a boot measured before it stopped, from
// the facts the test set up (the refusal cases stop before the facts they
// lack matter).
func eventsFor(t *testing.T, r bootResult, tags []measure.Tag) []measure.Event {
	t.Helper()
	p := boot.ReadPolicy(r.env.Files)
	ids, thr := boot.KeyIDs(p.Keys)
	board := "qemu-x86_64"
	if r.env.ID.SysVendor != "QEMU" {
		board = "generic-x86_64"
	}
	var out []measure.Event
	for _, tag := range tags {
		switch tag {
		case measure.TagPolicy:
			out = append(out, measure.PolicyEvent(p.Raw))
		case measure.TagKeySet:
			out = append(out, measure.KeySetEvent(ids, thr))
		case measure.TagBoard:
			out = append(out, measure.BoardEvent(board, r.env.ID.String()))
		case measure.TagDecision:
			out = append(out, boot.DecisionEvent(decide.Facts{Request: decide.RequestNone, Profile: decide.Production, Reason: decide.ReasonDefault}))
		case measure.TagRoot:
			out = append(out, measure.RootEvent(measure.Root{Kind: measure.RootVerity, RootHash: rootA}))
		}
	}
	return out
}

// TestBootTPMFailures fails the TPM at each extend. With tpm_required
// (the default) every failure refuses. With tpm_required=false only a
// failure of the very first extend lets the boot go on (unmeasured, with
// warnings); once anything was extended, a later failure refuses, so the
// booted system never finds a prefix of the events it could complete.
func TestBootTPMFailures(t *testing.T) {
	tags := measure.Order()
	for _, required := range []bool{true, false} {
		p := pol{}.String()
		if !required {
			p = pol{tpmOptional: true}.String()
		}
		for i, tag := range tags {
			t.Run(fmt.Sprintf("required=%t/extend-%d-%s", required, i+1, tag), func(t *testing.T) {
				r := runBoot(t, bootCase{policy: p, tpm: func(t *testing.T, tpm *boottest.FaultTPM) {
					tpm.FailCC, tpm.FailAt = boottest.CCPCRExtend, i+1
				}})
				if !required && i == 0 {
					if r.err != nil {
						t.Fatalf("refused: %v", r.err)
					}
					if r.line("mcinit: warning: measuring policy: ") == "" {
						t.Errorf("no warning in %q", r.log.Lines)
					}
					if fmt.Sprintf("%x", r.pcr) != fmt.Sprintf("%x", make([]byte, 32)) {
						t.Errorf("PCR 13 %x: want untouched", r.pcr)
					}
					return
				}
				want := fmt.Sprintf("measuring %s: measure %s: TPM2_PCR_Extend(PCR 13): %v", tag, tag, boottest.ErrInjected)
				if refusal(r) != want {
					t.Fatalf("cause %q, want %q", refusal(r), want)
				}
				if r.did("switch") || r.did("handoff") {
					t.Errorf("went on after a failed extend: %q", r.env.Actions)
				}
			})
		}
	}
}

// TestBootFloorLockFails (issue 11 item 5): a failed TPM2_NV_WriteLock
// leaves the floor writable by the booted system. Production refuses;
// development goes on, says so, and measures the failure before the
// separator, so no verifier classifies the boot.
func TestBootFloorLockFails(t *testing.T) {
	p := pol{nvIndex: floorIdx}.String()
	failLock := func(t *testing.T, tpm *boottest.FaultTPM) {
		provisionFloor(3)(t, tpm)
		tpm.FailCC, tpm.FailAt = boottest.CCNVWriteLock, 1
	}
	r := runBoot(t, bootCase{policy: p, tpm: failLock})
	want := fmt.Sprintf("settling the rollback floor at version 3: rollback floor %#x: TPM2_NV_WriteLock: %v", floorIdx, boottest.ErrInjected)
	if refusal(r) != want {
		t.Fatalf("production: cause %q, want %q", refusal(r), want)
	}

	r = runBoot(t, bootCase{policy: p, tpm: failLock, serial: devSerial, line: "mcinit.profile=development"})
	if r.err != nil {
		t.Fatalf("development refused: %v", r.err)
	}
	if r.line("mcinit: warning: rollback floor 0x1504d43 not locked: ") == "" {
		t.Errorf("no warning in %q", r.log.Lines)
	}
	lg, err := measure.ParseLog(r.env.EventLog)
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	for _, rec := range lg.Records {
		ev, err := rec.Tagged()
		if err != nil {
			t.Fatal(err)
		}
		tags = append(tags, ev.Tag.String())
	}
	if got := strings.Join(tags, ","); got != "policy,keyset,board,decision,root,failure,separator" {
		t.Errorf("events %s: want the failure before the separator", got)
	}
}

// A TPM whose driver is one of the board's modules (SPI, I2C, firmware
// TPM) is not there when /init first looks, while the modules load in the
// background: the pipeline waits for them and opens it again, and the boot
// is measured as usual.
func TestBootTPMFromBoardModule(t *testing.T) {
	r := runBoot(t, bootCase{policy: pol{}.String(), tpmAfterModules: true})
	if r.err != nil {
		t.Fatalf("refused: %v\n%s", r.err, strings.Join(r.log.Lines, "\n"))
	}
	if r.env.Summary == nil || !r.env.Summary.TPM {
		t.Fatalf("summary %+v: want a TPM", r.env.Summary)
	}
	if line := r.line("TPM: none"); line != "" {
		t.Errorf("%q: the TPM was given up before the modules loaded", line)
	}
	if r.tpm.Counts[uint32(tpm2.TPMCCPCRExtend)] != 6 {
		t.Errorf("%d extends, want 6 (counts %v)", r.tpm.Counts[uint32(tpm2.TPMCCPCRExtend)], r.tpm.Counts)
	}
}

// A TPM driven by a board module that fails to load: the modules' error is
// the refusal (nothing can be measured without the TPM), not "no TPM".
func TestBootTPMModuleFails(t *testing.T) {
	r := runBoot(t, bootCase{policy: pol{}.String(), tpmAfterModules: true, modulesErr: errors.New("module tpm_tis_spi: no such device")})
	want := "loading modules for board qemu-x86_64: module tpm_tis_spi: no such device"
	if got := refusal(r); got != want {
		t.Fatalf("refusal %q, want %q", got, want)
	}
	if len(r.env.Actions) != 1 || !strings.HasPrefix(r.env.Actions[0], "modules ") {
		t.Errorf("actions %q: want the module load only", r.env.Actions)
	}
}
