package attest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-tpm/tpm2"

	"github.com/mcinit/mcinit/boot"
	"github.com/mcinit/mcinit/decide"
	"github.com/mcinit/mcinit/fwlog"
	"github.com/mcinit/mcinit/measure"
)

// KnownPolicy is a signed policy the verifier accepts. The caller has
// verified its signatures; Version, PCR and RootHashes come from parsing it.
type KnownPolicy struct {
	Raw        []byte   // the policy file exactly as signed and shipped
	Version    uint64   // policy version
	PCR        int      // the policy's PCR (policy.PCRIndex)
	RootHashes []string // accepted root hashes, lowercase hex; empty = any
	// KeyIDs and Threshold, when KeyIDs is set, are the trusted key set the
	// device must have measured.
	KeyIDs    []string
	Threshold int
	// TPMRequired is the policy's production.tpm_required.
	TPMRequired bool
}

// Options are the verifier's requirements beyond mcinit's own events.
type Options struct {
	// UKIs are the fleet's predicted UKIs: the booted image must be one.
	UKIs []*UKIGolden
	// AllowUnanchored accepts evidence without a firmware chain (direct
	// kernel boot, no firmware log): the verdict is then "unanchored" and
	// ok rests on mcinit's PCR alone. Without it such evidence is never ok.
	AllowUnanchored bool
	// AllowSHA1Only accepts a quote whose only bank is SHA-1.
	AllowSHA1Only bool
}

// Verdict values.
const (
	VerdictOK         = "ok"
	VerdictFail       = "fail"
	VerdictUnanchored = "unanchored"
)

// Check is one verifier check in the verdict.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Verdict is the verifier's answer, printed as JSON by `mcinit verify`.
type Verdict struct {
	Board    string `json:"board"`
	Identity string `json:"identity"` // empty when only its digest was measured
	// IdentitySHA256 is the SHA-256 of the whole identity string, always set;
	// an identity too long for the board event is measured only as this.
	IdentitySHA256 string `json:"identity_sha256"`
	// BoardCommit and BoardProfile are the nixos-hardware commit and
	// profile the board was imported from; empty for a hand-written board.
	BoardCommit  string `json:"board_nixos_hardware_commit,omitempty"`
	BoardProfile string `json:"board_nixos_hardware_profile,omitempty"`
	Profile      string `json:"profile"`
	Request      string `json:"request"`
	Reason       string `json:"reason"`
	// GrantSHA256 and GrantSource name the grant that unlocked
	// development (reason dev-allowed-grant): the SHA-256 of its document
	// and where /init read it, "initramfs" or "partition".
	GrantSHA256   string   `json:"grant_sha256,omitempty"`
	GrantSource   string   `json:"grant_source,omitempty"`
	PolicyVersion uint64   `json:"policy_version"`
	PolicyDigest  string   `json:"policy_digest"`
	Root          string   `json:"root"`
	RootHash      string   `json:"root_hash"`
	Upper         string   `json:"upper,omitempty"`
	PCR           int      `json:"pcr"`
	Banks         []string `json:"banks"`
	// TPMRequired is the booted policy's production.tpm_required (null
	// when the policy is not known).
	TPMRequired *bool `json:"tpm_required"`
	// IgnoredEvents counts events after the separator: replayed, never trusted.
	IgnoredEvents   int   `json:"ignored_events"`
	EvidenceVersion int   `json:"evidence_version"`
	QuotedPCRs      []int `json:"quoted_pcrs"`
	// Anchor is "firmware" when the firmware log shows a UKI started by
	// the firmware (PCR 4) and measured by the systemd stub (PCR 11), else
	// "none" (direct kernel boot, no firmware log, or only PCR 13 quoted).
	Anchor      string   `json:"anchor"`
	SecureBoot  *bool    `json:"secure_boot,omitempty"`
	UKI         string   `json:"uki,omitempty"`
	Authorities []string `json:"secure_boot_authorities,omitempty"`
	Checks      []Check  `json:"checks"`
	Verdict     string   `json:"verdict"` // "ok", "fail" or "unanchored"
	OK          bool     `json:"ok"`
}

func (v *Verdict) check(name string, err error, detail string) bool {
	c := Check{Name: name, OK: err == nil, Detail: detail}
	if err != nil {
		c.Detail = err.Error()
	}
	v.Checks = append(v.Checks, c)
	return err == nil
}

// ParseSignature decodes a TPMT_SIGNATURE that must be ECDSA with SHA-256:
// sigAlg, hash, then signatureR and signatureS as TPM2B_ECC_PARAMETERs,
// nothing after them (TPM 2.0 Part 2, 11.3.4 and 11.2.5.1). It is written
// out by hand, like ParseQuote, because go-tpm's reflective unmarshal cost
// a tenth of a verification; FuzzParseSignatureAgrees holds it to go-tpm.
func ParseSignature(b []byte) (r, s *big.Int, err error) {
	if len(b) == 0 || len(b) > MaxSigSize {
		return nil, nil, fmt.Errorf("signature: %d bytes, want 1-%d", len(b), MaxSigSize)
	}
	rd := beReader{b: b}
	alg, hash := rd.u16(), rd.u16()
	switch {
	case rd.err != nil:
	case alg != uint16(tpm2.TPMAlgECDSA):
		return nil, nil, fmt.Errorf("signature: algorithm %#x, want ECDSA", alg)
	case hash != uint16(tpm2.TPMAlgSHA256):
		return nil, nil, fmt.Errorf("signature: hash %#x, want SHA-256", hash)
	}
	rb := rd.sized(maxECCParameter, "signatureR")
	sb := rd.sized(maxECCParameter, "signatureS")
	if rd.err == nil && rd.off != len(b) {
		return nil, nil, errors.New("signature: trailing bytes after TPMT_SIGNATURE")
	}
	if rd.err != nil {
		return nil, nil, fmt.Errorf("signature: TPMT_SIGNATURE: %w", rd.err)
	}
	return new(big.Int).SetBytes(rb), new(big.Int).SetBytes(sb), nil
}

// Verify checks evidence against the enrolled AK, the expected nonce, the
// known signed policies and opt. It always returns a verdict listing every
// check; the error is non-nil exactly when the verdict is not ok. A
// verifier that checks many devices against the same policies uses
// NewVerifier once instead.
func Verify(ev *Evidence, known []KnownPolicy, nonce []byte, ak *ecdsa.PublicKey, opt Options) (*Verdict, error) {
	return NewVerifier(known, ak, opt).Verify(ev, nonce)
}

// Verifier verifies evidence against a fixed enrolled AK, known policies
// and options, with what depends only on them (each known policy's
// measured event, its key set event) computed once.
type Verifier struct {
	ak         *ecdsa.PublicKey
	opt        Options
	known      []KnownPolicy
	policyData [][]byte // measure.PolicyEvent(known[i].Raw).Data
	keySetData [][]byte // measure.KeySetEvent of known[i]'s keys, nil without KeyIDs
}

// NewVerifier prepares a Verifier. known is copied; its elements' slices
// must not change while the Verifier is in use.
func NewVerifier(known []KnownPolicy, ak *ecdsa.PublicKey, opt Options) *Verifier {
	vf := &Verifier{ak: ak, opt: opt, known: slices.Clone(known),
		policyData: make([][]byte, len(known)), keySetData: make([][]byte, len(known))}
	for i, kp := range known {
		vf.policyData[i] = measure.PolicyEvent(kp.Raw).Data
		if kp.KeyIDs != nil {
			vf.keySetData[i] = measure.KeySetEvent(kp.KeyIDs, kp.Threshold).Data
		}
	}
	return vf
}

// Verify is the package's Verify with the Verifier's AK, policies and
// options. It is safe for concurrent use.
func (vf *Verifier) Verify(ev *Evidence, nonce []byte) (*Verdict, error) {
	v := &Verdict{PCR: -1, Verdict: VerdictFail, Anchor: "none", Checks: make([]Check, 0, 16)}
	v.verify(vf, ev, nonce)
	v.OK = len(v.Checks) > 0
	var first *Check
	onlyAnchor := true
	for i := range v.Checks {
		if !v.Checks[i].OK {
			v.OK = false
			if first == nil {
				first = &v.Checks[i]
			}
			onlyAnchor = onlyAnchor && v.Checks[i].Name == CheckAnchor
		}
	}
	switch {
	case v.OK && v.Anchor == "firmware":
		v.Verdict = VerdictOK
		return v, nil
	case v.OK:
		v.Verdict = VerdictUnanchored // allowed by opt
		return v, nil
	case first == nil:
		return v, errors.New("attestation rejected: no checks ran")
	case onlyAnchor:
		v.Verdict = VerdictUnanchored
	}
	return v, fmt.Errorf("attestation rejected: %s: %s", first.Name, first.Detail)
}

// CheckAnchor is the check that fails when no firmware chain anchors the
// boot and opt does not allow that.
const CheckAnchor = "anchor"

func (v *Verdict) verify(vf *Verifier, ev *Evidence, nonce []byte) {
	ak, opt := vf.ak, vf.opt
	if ev == nil || ak == nil {
		v.check("inputs", errors.New("missing evidence or enrolled AK"), "")
		return
	}
	att, qi, err := ParseQuote(ev.Quote)
	if !v.check("quote-format", err, "TPMS_ATTEST quote") {
		return
	}

	// 1. The quote was signed by the enrolled AK.
	r, s, err := ParseSignature(ev.Signature)
	if err == nil {
		d := sha256.Sum256(ev.Quote)
		if !ecdsa.Verify(ak, d[:], r, s) {
			err = errors.New("ECDSA signature does not verify with the enrolled AK")
		}
	}
	sigOK := v.check("ak-signature", err, "ECDSA P-256 SHA-256 by the enrolled AK")

	// 2. It answers our challenge.
	err = nil
	if len(nonce) == 0 {
		err = errors.New("no expected nonce given")
	} else if !bytes.Equal(att.ExtraData.Buffer, nonce) {
		err = fmt.Errorf("quote nonce %x, expected %x", att.ExtraData.Buffer, nonce)
	}
	v.check("nonce", err, "")
	if !sigOK {
		return // nothing below is trustworthy without the signature
	}

	// 3. The logs parse and replay to the quoted PCR digest.
	v.EvidenceVersion = ev.Version
	lg, err := measure.ParseLog(ev.EventLog)
	if err == nil && len(lg.Records) == 0 {
		err = errors.New("no events")
	}
	if !v.check("event-log", err, "crypto-agile log with a Spec ID Event03 header") {
		return
	}
	v.PCR = int(lg.Records[0].PCR)
	for _, h := range lg.Banks {
		v.Banks = append(v.Banks, measure.BankName(h))
	}
	err = nil
	if len(lg.Banks) == 1 && lg.Banks[0] == crypto.SHA1 && !opt.AllowSHA1Only {
		err = errors.New("SHA-1 is the only bank: SHA-1 collisions are practical (allow with -allow-sha1)")
	}
	if !v.check("banks", err, strings.Join(v.Banks, ",")) {
		return
	}
	pcrs, order, err := quotedPCRs(qi.PCRSelect, lg.Banks, v.PCR)
	if !v.check("quote-selection", err, "") {
		return
	}
	v.QuotedPCRs = pcrs
	var fw *fwlog.Log
	if ev.FirmwareLog != nil {
		fw, err = fwlog.Parse(ev.FirmwareLog)
		if err == nil {
			err = checkFirmwareBanks(fw, lg.Banks, v.PCR)
		}
		if !v.check("firmware-log", err, "the firmware's crypto-agile log") {
			return
		}
	}
	values, err := pcrValues(pcrs, v.PCR, lg, fw, ev.PCRs)
	if err == nil {
		err = replayMatches(qi.PCRDigest.Buffer, order, pcrs, values, ev.PCRs)
	}
	replayOK := v.check("log-replay", err, fmt.Sprintf("PCRs %v, banks %s", pcrs, strings.Join(v.Banks, ",")))
	if len(ev.PCRs) > 0 && replayOK {
		v.check("pcrs-file", checkPCRFile(ev.PCRs, values), "pcrs.txt agrees with the replay")
	}
	if !replayOK {
		return
	}

	// 4. The events before the separator are exactly one successful boot.
	evs, ignored, err := preSeparator(lg, v.PCR)
	v.IgnoredEvents = ignored
	if !v.check("event-sequence", err, "policy, keyset, board, decision, root, separator; later events ignored") {
		return
	}
	v.interpret(evs, vf, v.PCR)

	// 5. The firmware chain: Secure Boot, the booted UKI, its command line.
	v.anchor(fw, pcrs, order, values, opt)
}

// quotedPCRs checks that the quote selects the same PCRs in every bank of
// the log and in nothing else: mcinit's pcr alone (evidence version 1), or
// it and every FirmwarePCR. It returns them ascending, with the banks in
// quote order.
func quotedPCRs(sel tpm2.TPMLPCRSelection, banks []crypto.Hash, pcr int) ([]int, []crypto.Hash, error) {
	var set []int
	var order []crypto.Hash
	for _, s := range sel.PCRSelections {
		h := measure.HashForAlg(uint16(s.Hash))
		if h == 0 || !slices.Contains(banks, h) || slices.Contains(order, h) {
			return nil, nil, fmt.Errorf("quote selects bank %#x, not a log bank or twice", s.Hash)
		}
		var these []int
		for i, b := range s.PCRSelect {
			for bit := 0; bit < 8; bit++ {
				if b&(1<<bit) != 0 {
					these = append(these, i*8+bit)
				}
			}
		}
		if order != nil && !slices.Equal(these, set) {
			return nil, nil, fmt.Errorf("quote selects PCRs %v in %s but %v in %s", these, measure.BankName(h), set, measure.BankName(order[0]))
		}
		set = these
		order = append(order, h)
	}
	if len(order) != len(banks) {
		return nil, nil, fmt.Errorf("quote covers %d of the log's %d banks", len(order), len(banks))
	}
	want := append(slices.Clone(FirmwarePCRs), pcr)
	slices.Sort(want)
	if !slices.Equal(set, []int{pcr}) && !slices.Equal(set, want) {
		return nil, nil, fmt.Errorf("quote selects PCRs %v, want %v (or %d alone)", set, want, pcr)
	}
	return set, order, nil
}

// checkFirmwareBanks: the firmware log covers every quoted bank and never
// touches mcinit's PCR (a stub or firmware event there would come before
// mcinit's first event, which the verifier does not model). The systemd
// stub's events there are named: systemd 252's stub measures the system
// extensions it finds next to the UKI (*.raw in its .extra.d directory)
// into PCR 13 as one event, "System extension initrd".
func checkFirmwareBanks(fw *fwlog.Log, banks []crypto.Hash, pcr int) error {
	for _, h := range banks {
		if !slices.Contains(fw.Banks, h) {
			return fmt.Errorf("firmware log lacks the %s bank", measure.BankName(h))
		}
	}
	if !fw.Has(pcr) {
		return nil
	}
	st, err := fw.StubEvents(pcr)
	if err != nil || len(st) == 0 {
		return fmt.Errorf("firmware log extends PCR %d, mcinit's", pcr)
	}
	why := "an EFI application measured into it before mcinit ran"
	if st[0].Description == StubSysextEvent {
		why = "system extensions (*.raw in the UKI's .extra.d directory on the ESP) were measured into it before mcinit ran"
	}
	return fmt.Errorf("firmware log extends PCR %d, mcinit's: %d EV_IPL event(s), the first %q (record %d): %s",
		pcr, len(st), st[0].Description, st[0].Record, why)
}

// StubSysextEvent is the description of the systemd stub's (252) event for
// the system extensions it passes to the kernel, in PCR 13.
const StubSysextEvent = "System extension initrd"

// pcrValues computes every quoted PCR: mcinit's from its log, the others
// from the firmware log, or, without one, from pcrs.txt (only to check
// mcinit's PCR against the quote; such values anchor nothing).
func pcrValues(pcrs []int, pcr int, lg *measure.Log, fw *fwlog.Log, file []PCRValue) (map[int]map[crypto.Hash][]byte, error) {
	out := map[int]map[crypto.Hash][]byte{}
	if fw != nil {
		out = fw.ReplayPCRs(pcrs) // one pass; mcinit's PCR is overwritten below
	}
	for _, p := range pcrs {
		switch {
		case p == pcr:
			out[p] = lg.Replay(p)
		case fw != nil:
		default:
			m := map[crypto.Hash][]byte{}
			for _, f := range file {
				if f.Index == p {
					m[f.Bank] = f.Value
				}
			}
			for _, h := range lg.Banks {
				if m[h] == nil {
					return nil, fmt.Errorf("PCR %d (%s) is quoted but neither a firmware log nor pcrs.txt gives it", p, measure.BankName(h))
				}
			}
			out[p] = m
		}
	}
	return out, nil
}

// replayMatches compares the quote's PCR digest with the digest of the
// computed values; on a mismatch it names the PCRs whose replay differs
// from what the device read (pcrs.txt), when it sent that.
func replayMatches(quoted []byte, order []crypto.Hash, pcrs []int, values map[int]map[crypto.Hash][]byte, file []PCRValue) error {
	dg := sha256.New()
	for _, h := range order {
		for _, p := range pcrs {
			dg.Write(values[p][h])
		}
	}
	if bytes.Equal(dg.Sum(nil), quoted) {
		return nil
	}
	var bad []string
	for _, f := range file {
		if v := values[f.Index][f.Bank]; v != nil && !bytes.Equal(v, f.Value) {
			bad = append(bad, fmt.Sprintf("PCR %d (%s)", f.Index, measure.BankName(f.Bank)))
		}
	}
	hint := ""
	if len(bad) > 0 {
		hint = "; the logs disagree with the device's reading of " + strings.Join(bad, ", ")
	}
	return fmt.Errorf("the logs replay PCRs %v to a digest other than the quoted %x (a log tampered or truncated)%s", pcrs, quoted, hint)
}

// anchor runs the firmware-chain checks, or records why there is no chain.
func (v *Verdict) anchor(fw *fwlog.Log, pcrs []int, banks []crypto.Hash, values map[int]map[crypto.Hash][]byte, opt Options) {
	why := ""
	var stub []fwlog.StubEvent
	switch {
	case len(pcrs) == 1:
		why = "evidence version 1: only mcinit's PCR is quoted"
	case fw == nil:
		why = "no firmware log in the evidence"
	default:
		var err error
		if stub, err = fw.StubEvents(fwlog.PCRStub); err != nil {
			v.check("uki-sections", err, "")
			return
		}
		if len(stub) == 0 {
			why = "no systemd stub events in PCR 11: not booted from a UKI (direct kernel boot)"
		} else if len(opt.UKIs) == 0 && opt.AllowUnanchored {
			why = "no fleet UKIs given: the firmware chain was not checked"
		}
	}
	if why != "" {
		var err error
		detail := why + " (allowed)"
		if !opt.AllowUnanchored {
			err = errors.New(why)
		}
		v.check(CheckAnchor, err, detail)
		return
	}
	v.Anchor = "firmware"

	// PCR 7: Secure Boot was on.
	sb, err := fw.SecureBoot()
	if err == nil {
		on := sb.Enabled
		v.SecureBoot, v.Authorities = &on, sb.Authorities
		if !on {
			err = errors.New("PCR 7: Secure Boot was off (the SecureBoot variable or a key database was not set)")
		}
	}
	v.check("secure-boot", err, "PCR 7: SecureBoot=1, PK, KEK, db, dbx measured")

	// PCR 4: the first image started from a boot option is a fleet UKI.
	var match *UKIGolden
	apps, err := fw.BootApps()
	if err == nil {
		var first *fwlog.App
		for i := range apps {
			if apps[i].AfterSeparator {
				first = &apps[i]
				break
			}
		}
		switch {
		case first == nil:
			err = errors.New("PCR 4: no boot application after the separator")
		case len(opt.UKIs) == 0:
			err = errors.New("PCR 4: no fleet UKI given to compare with (-uki)")
		default:
			for _, g := range opt.UKIs {
				if goldenMatches(g.Authenticode, first.Digests, banks) {
					match = g
					break
				}
			}
			if match == nil {
				err = fmt.Errorf("PCR 4: the booted image's Authenticode digest %x (sha256) is none of the %d fleet UKIs",
					first.Digests[crypto.SHA256], len(opt.UKIs))
			}
		}
	}
	if v.check("boot-image", err, "PCR 4: the firmware started a fleet UKI") && match != nil {
		v.UKI = match.Name
	}

	// PCR 11: the stub measured that UKI's sections (or, when PCR 4 did
	// not match, any fleet UKI's, to name the PCR that differs).
	err = nil
	p11 := values[fwlog.PCRStub]
	cands := opt.UKIs
	if match != nil {
		cands = []*UKIGolden{match}
	}
	ok := false
	for _, g := range cands {
		ok = ok || goldenMatches(g.PCR11, p11, banks)
	}
	if !ok {
		err = fmt.Errorf("PCR 11: the stub measured sections (%d events) that are not the fleet UKI's: sha256 %x", len(stub), p11[crypto.SHA256])
	}
	v.check("uki-sections", err, "PCR 11: the UKI's sections as the stub measured them")

	// PCRs 0-3, 5, 6: the platform, when the matched golden values fix it.
	if match != nil && len(match.Platform) > 0 {
		v.check("platform", platformMatches(match.Platform, values, banks), "PCRs 0-3, 5, 6: the firmware, its configuration and the boot disk are the golden file's")
	}

	// PCR 12: nothing from outside the UKI (a command line override).
	err = nil
	if params, perr := fw.StubEvents(fwlog.PCRStubParams); perr != nil {
		err = perr
	} else if len(params) > 0 {
		err = fmt.Errorf("PCR 12: the stub measured %d event(s) (%q): a command line or credentials from outside the UKI", len(params), params[0].Description)
	}
	v.check("cmdline", err, "PCR 12: the command line is the UKI's own")
}

// platformMatches compares the firmware's replayed PCRs with golden
// values in every quoted bank they give, naming the first that differs.
func platformMatches(g map[string]map[string]string, values map[int]map[crypto.Hash][]byte, banks []crypto.Hash) error {
	n := 0
	for _, p := range PlatformPCRs {
		m, ok := g[strconv.Itoa(p)]
		if !ok {
			continue
		}
		for _, h := range banks {
			want := goldenValue(m, h)
			if want == nil {
				continue
			}
			n++
			if got := values[p][h]; !bytes.Equal(want, got) {
				return fmt.Errorf("PCR %d (%s) is %x, the golden value %x", p, measure.BankName(h), got, want)
			}
		}
	}
	if n == 0 {
		return errors.New("the golden platform values cover none of the quoted banks")
	}
	return nil
}

// goldenMatches: every quoted bank that the golden values cover matches,
// and they cover at least one.
func goldenMatches(g map[string]string, got map[crypto.Hash][]byte, banks []crypto.Hash) bool {
	n := 0
	for _, h := range banks {
		want := goldenValue(g, h)
		if want == nil {
			continue
		}
		if !bytes.Equal(want, got[h]) {
			return false
		}
		n++
	}
	return n > 0
}

func checkPCRFile(vs []PCRValue, values map[int]map[crypto.Hash][]byte) error {
	for _, p := range vs {
		if r := values[p.Index][p.Bank]; r != nil && !bytes.Equal(p.Value, r) {
			return fmt.Errorf("%s:%d is %x, the log replays to %x", measure.BankName(p.Bank), p.Index, p.Value, r)
		}
	}
	return nil
}

// preSeparator returns the events up to and including the first separator
// and counts the records after it. Before the separator every record must
// be an mcinit event in pcr, whose digests match its data in every bank,
// in exactly the order of a successful boot.
func preSeparator(lg *measure.Log, pcr int) ([]measure.Event, int, error) {
	want := measure.Order()
	evs := make([]measure.Event, 0, len(want))
	hs := make([]hash.Hash, len(lg.Banks)) // one hasher per bank for every record
	for j, h := range lg.Banks {
		hs[j] = h.New()
	}
	var buf [64]byte
	for i, rec := range lg.Records {
		if int(rec.PCR) != pcr {
			return nil, 0, fmt.Errorf("record %d: PCR %d before the separator", i+1, rec.PCR)
		}
		ev, err := rec.Tagged()
		if err != nil {
			return nil, 0, fmt.Errorf("record %d: %w", i+1, err)
		}
		for j, h := range lg.Banks {
			if !bytes.Equal(rec.Digests[j], measure.DigestWith(hs[j], buf[:0], ev)) {
				return nil, 0, fmt.Errorf("record %d (%s): %s digest does not match its data", i+1, ev.Tag, measure.BankName(h))
			}
		}
		if ev.Tag == measure.TagFailure {
			return nil, 0, fmt.Errorf("record %d: boot refused: %s", i+1, strings.TrimSpace(string(ev.Data)))
		}
		if ev.Tag == measure.TagGrant {
			// Only where OrderFor(true) has it: right after the decision.
			want = measure.OrderFor(true)
		}
		if len(evs) >= len(want) || ev.Tag != want[len(evs)] {
			return nil, 0, fmt.Errorf("record %d: %s event where %s was expected", i+1, ev.Tag, want[min(len(evs), len(want)-1)])
		}
		evs = append(evs, ev)
		if ev.Tag == measure.TagSeparator {
			if string(ev.Data) != measure.SeparatorData {
				return nil, 0, fmt.Errorf("record %d: separator data %q", i+1, ev.Data)
			}
			return evs, len(lg.Records) - i - 1, nil
		}
	}
	return nil, 0, fmt.Errorf("no %s separator after %d events", measure.SeparatorData, len(evs))
}

// interpret checks the content of the boot's events and fills the verdict.
func (v *Verdict) interpret(evs []measure.Event, vf *Verifier, pcr int) {
	// preSeparator let through only mcinit's tags, each at most once, and
	// there are a handful: a scan finds one without a table to keep in step
	// with the tags.
	find := func(t measure.Tag) *measure.Event {
		for i := range evs {
			if evs[i].Tag == t {
				return &evs[i]
			}
		}
		return nil
	}
	data := func(t measure.Tag) []byte {
		if e := find(t); e != nil {
			return e.Data
		}
		return nil
	}

	// Policy: one of the known signed policies, for this PCR.
	var kp *KnownPolicy
	ki := -1
	for i := range vf.known {
		if bytes.Equal(vf.policyData[i], data(measure.TagPolicy)) {
			kp, ki = &vf.known[i], i
			break
		}
	}
	var err error
	if fs, ferr := measure.Fields(data(measure.TagPolicy)); ferr == nil && len(fs) == 1 {
		v.PolicyDigest = fs[0][1]
	}
	switch {
	case kp == nil:
		err = fmt.Errorf("policy sha256 %s is not among the %d known policies", v.PolicyDigest, len(vf.known))
	case kp.PCR != pcr:
		err = fmt.Errorf("policy measures into PCR %d, the quote covers PCR %d", kp.PCR, pcr)
	}
	if v.check("policy-known", err, "") {
		v.PolicyVersion = kp.Version
		req := kp.TPMRequired
		v.TPMRequired = &req
	}

	_, err = measure.Fields(data(measure.TagKeySet))
	if err == nil && kp != nil && kp.KeyIDs != nil && !bytes.Equal(data(measure.TagKeySet), vf.keySetData[ki]) {
		err = errors.New("the device trusts another key set than the one given")
	}
	v.check("keyset", err, "")

	bi, err := measure.ParseBoardEvent(data(measure.TagBoard))
	if v.check("board", err, "") {
		v.Board, v.Identity, v.IdentitySHA256 = bi.Board, bi.Identity, bi.IdentitySHA256
		v.BoardCommit, v.BoardProfile = bi.Source.Commit, bi.Source.Profile
	}

	d, ok := boot.DecisionFromEvent(data(measure.TagDecision))
	err = nil
	if !ok {
		err = fmt.Errorf("decision %q is not one /init can produce", data(measure.TagDecision))
	}
	grantEv := find(measure.TagGrant)
	haveGrant := grantEv != nil
	switch {
	case err != nil:
	case d.Reason == decide.ReasonDevGrant && !haveGrant:
		err = errors.New("development by a grant, and no grant event names it")
	case d.Reason != decide.ReasonDevGrant && haveGrant:
		err = fmt.Errorf("a grant event with decision reason %s", d.Reason)
	case haveGrant:
		v.GrantSHA256, v.GrantSource, err = measure.GrantFields(grantEv.Data)
	}
	if v.check("decision", err, "exactly one decision, before the separator") {
		v.Request, v.Profile, v.Reason = string(d.Request), string(d.Profile), string(d.Reason)
	}

	v.check("root", v.root(data(measure.TagRoot), d, ok, kp), "")
}

func (v *Verdict) root(data []byte, d decide.Facts, haveDecision bool, kp *KnownPolicy) error {
	r, err := measure.RootFields(data)
	if err != nil {
		if fs, ferr := measure.Fields(data); ferr == nil {
			for _, f := range fs {
				if f[0] == "root" {
					v.Root = f[1]
				}
			}
		}
		return err
	}
	v.Root, v.RootHash = string(r.Kind), r.RootHash
	if r.Kind == measure.RootOverlay {
		if v.RootHash == "" {
			v.RootHash = "unverified"
		}
		v.Upper = r.Upper
		if r.UpperLabel != "" {
			v.Upper += ":" + r.UpperLabel
		}
	}
	if haveDecision {
		if d.Profile == decide.Production && v.Root != string(measure.RootVerity) {
			return fmt.Errorf("production profile with a %s root", v.Root)
		}
		if d.Profile == decide.Development && v.Root != string(measure.RootOverlay) {
			return fmt.Errorf("development profile with a %s root", v.Root)
		}
	}
	if kp != nil && len(kp.RootHashes) > 0 && v.Root == string(measure.RootVerity) {
		if !slices.Contains(kp.RootHashes, v.RootHash) {
			return fmt.Errorf("root hash %s is not one of the policy's roots", v.RootHash)
		}
	}
	if _, err := hex.DecodeString(rootHashOrEmpty(v.RootHash)); err != nil {
		return fmt.Errorf("root hash %q is not hex", v.RootHash)
	}
	return nil
}

func rootHashOrEmpty(h string) string {
	if h == "unverified" {
		return ""
	}
	return h
}
