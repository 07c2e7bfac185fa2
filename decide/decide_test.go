package decide

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcinit/mcinit/cmdline"
	"github.com/mcinit/mcinit/policy"
)

const rootHash = "0000000000000000000000000000000000000000000000000000000000000000"

// pol builds a verified policy from the base policy changed by edits,
// written by policy.Marshal and parsed back (so defaults are filled in as
// at boot); the signature layer is tested in signing/ and policy/.
func pol(t testing.TB, edits ...func(*policy.Policy)) *policy.Verified {
	t.Helper()
	p := &policy.Policy{
		Format:     policy.FormatVersion,
		Version:    5,
		Boards:     []string{"qemu-x86_64", "qemu-aarch64-virt", "rpi4"},
		Production: policy.Production{Roots: []policy.Root{{RootHash: rootHash, DataBlocks: 1}}},
	}
	for _, e := range edits {
		e(p)
	}
	doc, err := policy.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := policy.Parse(doc)
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	return &policy.Verified{Policy: parsed, SignedBy: []string{"k"}}
}

// Edits of the base policy.
func devAll(p *policy.Policy) {
	allowBoards("rpi4")(p)
	allowGrants(p)
	p.Development.RescueShell = true
	p.Development.AllowDevices = []policy.Device{{Board: "qemu-x86_64", DeviceID: "DEV-1"}}
}
func allowBoards(b ...string) func(*policy.Policy) {
	return func(p *policy.Policy) { p.Development.AllowBoards = b }
}
func allowGrants(p *policy.Policy)   { p.Development.AllowGrants = true }
func unknownBoards(p *policy.Policy) { p.AllowUnknownBoards = true }
func rollbackNV(p *policy.Policy)    { p.Production.RollbackNVIndex = 0x01500016 }
func tpmOptional(p *policy.Policy)   { no := false; p.Production.TPMRequired = &no }

func cl(t testing.TB, s string) *cmdline.Cmdline {
	t.Helper()
	c, err := cmdline.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func grant(board, dev string, minV, maxV uint64, signed bool) *policy.Grant {
	g := &policy.Grant{Format: 1, Board: board, DeviceID: dev, MinPolicyVersion: &minV, MaxPolicyVersion: &maxV}
	if signed {
		g.SignedBy = []string{"k"}
	}
	return g
}

func TestDecide(t *testing.T) {
	full := pol(t, devAll)
	never := pol(t)
	generic := pol(t, unknownBoards, allowBoards("generic-x86_64"))
	rollback := pol(t, rollbackNV, devAll)
	rollbackSoft := pol(t, rollbackNV, tpmOptional)
	noGrants := pol(t, allowBoards("rpi4"))
	okGrant := grant("qemu-x86_64", "SN-9", 1, 9, true)
	expiring := grant("qemu-x86_64", "SN-9", 1, 9, true)
	expiring.NotAfter = "2027-01-31T00:00:00Z"
	dev := "mcinit.profile=development"

	type want struct {
		refuse  string // substring of the refusal cause; "" = boots
		profile Profile
		request Request
		reason  Reason
		warn    string // substring of some warning
		shell   bool
	}
	for _, tc := range []struct {
		name string
		in   Input
		want want
	}{
		// Rule 1: no verified policy → refuse, whatever else is true.
		{"no policy", Input{Board: "rpi4"}, want{refuse: "no valid policy"}},
		{"bad signature", Input{PolicyErr: errors.New("bad signature from key ab"), Board: "rpi4"}, want{refuse: "no valid policy: bad signature from key ab"}},
		{"too few signatures, dev requested on dev board", Input{PolicyErr: errors.New("only 1 of 2 required distinct signatures"), Board: "rpi4", Cmdline: cl(t, dev)}, want{refuse: "only 1 of 2"}},
		{"policy and error both set", Input{Policy: full, PolicyErr: errors.New("x"), Board: "rpi4", Cmdline: cl(t, dev)}, want{refuse: "no valid policy: x"}},
		{"empty verified", Input{Policy: &policy.Verified{}, Board: "rpi4"}, want{refuse: "no valid policy"}},

		// Rule 2: rollback.
		{"below floor", Input{Policy: full, Board: "rpi4", Floor: 6, FloorKnown: true}, want{refuse: "policy version 5 is below the rollback floor 6"}},
		{"at floor", Input{Policy: full, Board: "rpi4", Floor: 5, FloorKnown: true}, want{profile: Production, request: RequestNone, reason: ReasonDefault}},
		{"above floor", Input{Policy: full, Board: "rpi4", Floor: 1, FloorKnown: true}, want{profile: Production, request: RequestNone, reason: ReasonDefault}},
		{"below floor, dev board, dev requested", Input{Policy: full, Board: "rpi4", Cmdline: cl(t, dev), Floor: 9, FloorKnown: true}, want{refuse: "rollback floor 9"}},
		{"floor not recorded yet", Input{Policy: rollback, Board: "rpi4"}, want{profile: Production, request: RequestNone, reason: ReasonDefault, warn: "rollback floor 0x1500016 not recorded yet"}},
		{"floor not recorded, tpm optional", Input{Policy: rollbackSoft, Board: "rpi4"}, want{profile: Production, request: RequestNone, reason: ReasonDefault, warn: "not recorded yet"}},
		{"no rollback index, floor ignored", Input{Policy: full, Board: "rpi4"}, want{profile: Production, request: RequestNone, reason: ReasonDefault}},
		{"floor known, rollback", Input{Policy: rollback, Board: "rpi4", Floor: 5, FloorKnown: true, Cmdline: cl(t, dev)}, want{profile: Development, request: RequestDevelopment, reason: ReasonDevBoard}},
		{"floor not recorded, dev", Input{Policy: rollback, Board: "rpi4", Cmdline: cl(t, dev)}, want{profile: Development, request: RequestDevelopment, reason: ReasonDevBoard, warn: "not recorded yet"}},

		// Rule 3: board coverage.
		{"no board", Input{Policy: full}, want{refuse: "no board file matches"}},
		{"board not covered", Input{Policy: full, Board: "imx8mp-evk"}, want{refuse: "board imx8mp-evk is not covered by policy version 5"}},
		{"board not covered, dev requested", Input{Policy: full, Board: "imx8mp-evk", Cmdline: cl(t, dev)}, want{refuse: "not covered"}},
		{"generic, not allowed", Input{Policy: full, Board: "generic-x86_64"}, want{refuse: "does not allow unknown boards"}},
		{"generic, allowed", Input{Policy: generic, Board: "generic-x86_64"}, want{profile: Production, request: RequestNone, reason: ReasonDefault}},
		{"generic, allowed, dev board", Input{Policy: generic, Board: "generic-x86_64", Cmdline: cl(t, dev)}, want{profile: Development, request: RequestDevelopment, reason: ReasonDevBoard}},
		{"generic other arch, dev denied", Input{Policy: generic, Board: "generic-aarch64", Cmdline: cl(t, dev)}, want{profile: Production, request: RequestDevelopment, reason: ReasonDevDenied}},

		// Rule 4: production requests.
		{"no flag", Input{Policy: full, Board: "rpi4", Cmdline: cl(t, "quiet")}, want{profile: Production, request: RequestNone, reason: ReasonDefault}},
		{"nil cmdline", Input{Policy: full, Board: "rpi4"}, want{profile: Production, request: RequestNone, reason: ReasonDefault}},
		{"production requested", Input{Policy: full, Board: "rpi4", Cmdline: cl(t, "mcinit.profile=production")}, want{profile: Production, request: RequestProduction, reason: ReasonRequested}},
		{"malformed", Input{Policy: full, Board: "rpi4", Cmdline: cl(t, "mcinit.profile=devel")}, want{profile: Production, request: RequestMalformed, reason: ReasonMalformedRequest, warn: "malformed request"}},
		{"conflicting repeats", Input{Policy: full, Board: "rpi4", Cmdline: cl(t, dev+" mcinit.profile=production")}, want{profile: Production, request: RequestMalformed, reason: ReasonMalformedRequest, warn: "different values"}},
		{"agreeing repeats", Input{Policy: full, Board: "rpi4", Cmdline: cl(t, dev+" "+dev)}, want{profile: Development, request: RequestDevelopment, reason: ReasonDevBoard}},
		{"flag after --", Input{Policy: full, Board: "rpi4", Cmdline: cl(t, "-- "+dev)}, want{profile: Production, request: RequestNone, reason: ReasonDefault}},

		// Rule 5: development.
		{"dev by board", Input{Policy: full, Board: "rpi4", Cmdline: cl(t, dev)}, want{profile: Development, request: RequestDevelopment, reason: ReasonDevBoard}},
		{"dev by device", Input{Policy: full, Board: "qemu-x86_64", DeviceID: "DEV-1", Cmdline: cl(t, dev)}, want{profile: Development, request: RequestDevelopment, reason: ReasonDevDevice}},
		{"device on other board", Input{Policy: full, Board: "qemu-aarch64-virt", DeviceID: "DEV-1", Cmdline: cl(t, dev)}, want{profile: Production, request: RequestDevelopment, reason: ReasonDevDenied, warn: `not allowed for board qemu-aarch64-virt device "DEV-1": booting production`}},
		{"dev by grant", Input{Policy: full, Board: "qemu-x86_64", DeviceID: "SN-9", Cmdline: cl(t, dev), Grants: []*policy.Grant{okGrant}}, want{profile: Development, request: RequestDevelopment, reason: ReasonDevGrant}},
		{"grant for other device", Input{Policy: full, Board: "qemu-x86_64", DeviceID: "SN-8", Cmdline: cl(t, dev), Grants: []*policy.Grant{okGrant}}, want{profile: Production, request: RequestDevelopment, reason: ReasonDevDenied, warn: "not allowed"}},
		{"grant for other board", Input{Policy: full, Board: "qemu-aarch64-virt", DeviceID: "SN-9", Cmdline: cl(t, dev), Grants: []*policy.Grant{okGrant}}, want{profile: Production, request: RequestDevelopment, reason: ReasonDevDenied}},
		{"grant version too low", Input{Policy: full, Board: "qemu-x86_64", DeviceID: "SN-9", Cmdline: cl(t, dev), Grants: []*policy.Grant{grant("qemu-x86_64", "SN-9", 6, 9, true)}}, want{profile: Production, request: RequestDevelopment, reason: ReasonDevDenied}},
		{"grant version too high", Input{Policy: full, Board: "qemu-x86_64", DeviceID: "SN-9", Cmdline: cl(t, dev), Grants: []*policy.Grant{grant("qemu-x86_64", "SN-9", 1, 4, true)}}, want{profile: Production, request: RequestDevelopment, reason: ReasonDevDenied}},
		{"unverified grant", Input{Policy: full, Board: "qemu-x86_64", DeviceID: "SN-9", Cmdline: cl(t, dev), Grants: []*policy.Grant{grant("qemu-x86_64", "SN-9", 1, 9, false)}}, want{profile: Production, request: RequestDevelopment, reason: ReasonDevDenied}},
		{"grants not allowed", Input{Policy: noGrants, Board: "qemu-x86_64", DeviceID: "SN-9", Cmdline: cl(t, dev), Grants: []*policy.Grant{okGrant}}, want{profile: Production, request: RequestDevelopment, reason: ReasonDevDenied}},
		{"grant, no device id", Input{Policy: full, Board: "qemu-x86_64", Cmdline: cl(t, dev), Grants: []*policy.Grant{grant("qemu-x86_64", "", 1, 9, true)}}, want{profile: Production, request: RequestDevelopment, reason: ReasonDevDenied, warn: "device (unknown)"}},
		{"never", Input{Policy: never, Board: "rpi4", DeviceID: "DEV-1", Cmdline: cl(t, dev), Grants: []*policy.Grant{grant("rpi4", "DEV-1", 0, 9, true)}}, want{profile: Production, request: RequestDevelopment, reason: ReasonDevDenied}},
		{"nil grant", Input{Policy: full, Board: "qemu-x86_64", DeviceID: "SN-9", Cmdline: cl(t, dev), Grants: []*policy.Grant{nil, okGrant}}, want{profile: Development, request: RequestDevelopment, reason: ReasonDevGrant}},
		// Grants with not_after (issue 11 item 9): the clock only voids.
		{"grant before not_after", Input{Policy: full, Board: "qemu-x86_64", DeviceID: "SN-9", Cmdline: cl(t, dev), Grants: []*policy.Grant{expiring}, Now: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}, want{profile: Development, request: RequestDevelopment, reason: ReasonDevGrant}},
		{"grant past not_after", Input{Policy: full, Board: "qemu-x86_64", DeviceID: "SN-9", Cmdline: cl(t, dev), Grants: []*policy.Grant{expiring}, Now: time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)}, want{profile: Production, request: RequestDevelopment, reason: ReasonDevDenied}},
		{"grant with not_after, no clock", Input{Policy: full, Board: "qemu-x86_64", DeviceID: "SN-9", Cmdline: cl(t, dev), Grants: []*policy.Grant{expiring}}, want{profile: Production, request: RequestDevelopment, reason: ReasonDevDenied}},
		{"board beats device and grant", Input{Policy: full, Board: "rpi4", DeviceID: "SN-9", Cmdline: cl(t, dev), Grants: []*policy.Grant{grant("rpi4", "SN-9", 0, 9, true)}}, want{profile: Development, request: RequestDevelopment, reason: ReasonDevBoard}},
		{"dev allowed but production requested", Input{Policy: full, Board: "rpi4", Cmdline: cl(t, "mcinit.profile=production")}, want{profile: Production, request: RequestProduction, reason: ReasonRequested}},

		// Shell: development only.
		{"shell in development", Input{Policy: full, Board: "rpi4", Cmdline: cl(t, dev+" mcinit.shell")}, want{profile: Development, request: RequestDevelopment, reason: ReasonDevBoard, shell: true}},
		{"shell in production", Input{Policy: full, Board: "rpi4", Cmdline: cl(t, "mcinit.shell")}, want{profile: Production, request: RequestNone, reason: ReasonDefault, warn: "mcinit.shell ignored"}},
		{"shell without rescue_shell", Input{Policy: noGrants, Board: "rpi4", Cmdline: cl(t, dev+" mcinit.shell")}, want{profile: Development, request: RequestDevelopment, reason: ReasonDevBoard, warn: "mcinit.shell ignored: the policy does not set rescue_shell"}},
		{"shell when dev denied", Input{Policy: never, Board: "rpi4", Cmdline: cl(t, dev+" mcinit.shell")}, want{profile: Production, request: RequestDevelopment, reason: ReasonDevDenied, warn: "mcinit.shell ignored"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Decide(tc.in)
			if tc.want.refuse != "" {
				var r *Refusal
				if !errors.As(err, &r) || !strings.Contains(r.Cause, tc.want.refuse) {
					t.Fatalf("got %+v, %v; want refusal %q", d, err, tc.want.refuse)
				}
				if d != nil {
					t.Error("a refusal returned a decision too")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Profile != tc.want.profile || d.Request != tc.want.request || d.Reason != tc.want.reason || d.Shell != tc.want.shell {
				t.Errorf("got %s %s %s shell=%v, want %s %s %s shell=%v", d.Profile, d.Request, d.Reason, d.Shell, tc.want.profile, tc.want.request, tc.want.reason, tc.want.shell)
			}
			if tc.want.warn == "" && tc.want.reason == ReasonDevDenied {
				tc.want.warn = "development requested but not allowed"
			}
			if tc.want.warn != "" && !slices.ContainsFunc(d.Warnings, func(w string) bool { return strings.Contains(w, tc.want.warn) }) {
				t.Errorf("warnings %q lack %q", d.Warnings, tc.want.warn)
			}
			if tc.want.warn == "" && len(d.Warnings) > 0 {
				t.Errorf("unexpected warnings %q", d.Warnings)
			}
			if d.Facts != (Facts{d.Request, d.Profile, d.Reason}) {
				t.Errorf("facts %+v", d.Facts)
			}
		})
	}
}

// TestDecideInvariants runs the cross product of every input dimension and
// checks the rules that must always hold: development only with a verified
// policy, a development request, a covered board and an allowing rule; facts
// always from the closed set.
func TestDecideInvariants(t *testing.T) {
	policies := map[string]*policy.Verified{
		"nil":      nil,
		"full":     pol(t, devAll),
		"never":    pol(t),
		"generic":  pol(t, unknownBoards, allowGrants),
		"rollback": pol(t, rollbackNV, devAll),
	}
	errs := []error{nil, errors.New("bad signature")}
	boards := []string{"", "rpi4", "qemu-x86_64", "imx8mp-evk", "generic-x86_64"}
	devices := []string{"", "DEV-1", "SN-9"}
	lines := []string{"", dev(), "mcinit.profile=production", "mcinit.profile=x", dev() + " mcinit.profile=production", dev() + " mcinit.shell", "-- " + dev()}
	expired := grant("qemu-x86_64", "SN-9", 0, 100, true)
	expired.NotAfter = "2026-01-01T00:00:00Z"
	grantSets := [][]*policy.Grant{nil, {grant("qemu-x86_64", "SN-9", 0, 100, true)}, {grant("generic-x86_64", "SN-9", 0, 100, true)}, {grant("qemu-x86_64", "SN-9", 0, 100, false)},
		{grant("qemu-x86_64", "SN-9", 6, 100, true)}, {grant("rpi4", "DEV-1", 0, 100, true)}, {expired}}
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	floors := []struct {
		v     uint64
		known bool
	}{{0, false}, {5, true}, {6, true}}

	possible := map[string]bool{}
	for _, f := range PossibleFacts() {
		possible[string(f.Canonical())] = true
	}
	seen := map[string]bool{}
	n := 0
	for pn, pv := range policies {
		for _, perr := range errs {
			for _, b := range boards {
				for _, dv := range devices {
					for _, l := range lines {
						for gi, gs := range grantSets {
							for _, fl := range floors {
								in := Input{Policy: pv, PolicyErr: perr, Board: b, DeviceID: dv, Cmdline: cl(t, l), Grants: gs, Floor: fl.v, FloorKnown: fl.known, Now: now}
								n++
								d, err := Decide(in)
								name := fmt.Sprintf("policy=%s err=%v board=%q dev=%q cmdline=%q grants=%d floor=%v", pn, perr, b, dv, l, gi, fl)
								if err != nil {
									var r *Refusal
									if !errors.As(err, &r) {
										t.Fatalf("%s: non-refusal error %v", name, err)
									}
									seen["refused"] = true
									continue
								}
								if pv == nil || perr != nil {
									t.Fatalf("%s: booted without a verified policy", name)
								}
								if b == "" || !pv.Policy.Covers(b) || (fl.known && pv.Policy.Version < fl.v) {
									t.Fatalf("%s: booted on an uncovered board or below the floor", name)
								}
								// Development exactly when requested and allowed for
								// THIS board and device, by the rule the reason names.
								want, why := allowedFor(pv.Policy, b, dv, gs, now)
								if d.Profile == Development && (d.Request != RequestDevelopment || !want) {
									t.Fatalf("%s: development without request or permission for this board/device", name)
								}
								if d.Request == RequestDevelopment && want && (d.Profile != Development || d.Reason != why) {
									t.Fatalf("%s: allowed by %s, got %s/%s", name, why, d.Profile, d.Reason)
								}
								if d.Shell && (d.Profile != Development || !pv.Policy.Development.RescueShell) {
									t.Fatalf("%s: shell outside development or without rescue_shell", name)
								}
								c := string(d.Canonical())
								if !possible[c] {
									t.Fatalf("%s: facts %q not in PossibleFacts", name, c)
								}
								seen[c] = true
							}
						}
					}
				}
			}
		}
	}
	if len(seen) != len(possible)+1 {
		t.Errorf("only %d of %d outcomes reached: %v", len(seen), len(possible)+1, seen)
	}
	t.Logf("%d input combinations, %d distinct outcomes", n, len(seen))
}

func dev() string { return "mcinit.profile=development" }

// allowedFor is the test's own statement of rule 5, written apart from
// devAllowed: may this board and device boot development under p, and by
// which rule (board first, then device, then grant)?
func allowedFor(p *policy.Policy, board, device string, grants []*policy.Grant, now time.Time) (bool, Reason) {
	for _, b := range p.Development.AllowBoards {
		if b == board {
			return true, ReasonDevBoard
		}
	}
	for _, d := range p.Development.AllowDevices {
		if device != "" && d.Board == board && d.DeviceID == device {
			return true, ReasonDevDevice
		}
	}
	if !p.Development.AllowGrants || device == "" {
		return false, ""
	}
	for _, g := range grants {
		if g == nil || len(g.SignedBy) == 0 || g.Board != board || g.DeviceID != device {
			continue
		}
		if (g.MinPolicyVersion != nil && p.Version < *g.MinPolicyVersion) || (g.MaxPolicyVersion != nil && p.Version > *g.MaxPolicyVersion) {
			continue
		}
		if g.NotAfter != "" {
			end, err := time.Parse(time.RFC3339, g.NotAfter)
			if err != nil || now.After(end) {
				continue
			}
		}
		return true, ReasonDevGrant
	}
	return false, ""
}

func TestCanonical(t *testing.T) {
	d := &Decision{Facts: Facts{RequestDevelopment, Production, ReasonDevDenied}}
	if got := string(d.Canonical()); got != "request=development profile=production reason=dev-denied" {
		t.Errorf("Canonical = %q", got)
	}
	seen := map[string]bool{}
	for _, f := range PossibleFacts() {
		c := string(f.Canonical())
		if seen[c] {
			t.Errorf("duplicate %q", c)
		}
		seen[c] = true
		if !slices.Contains(AllRequests, f.Request) || !slices.Contains(AllProfiles, f.Profile) || !slices.Contains(AllReasons, f.Reason) {
			t.Errorf("%q uses a value outside the closed sets", c)
		}
	}
	if r := (&Refusal{Cause: "x"}); r.Error() != "refusing to boot: x" {
		t.Errorf("Refusal.Error = %q", r.Error())
	}
}
