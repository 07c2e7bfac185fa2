package attest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/google/go-tpm/tpm2"

	"github.com/mcinit/mcinit/decide"
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
}

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
	BoardCommit   string   `json:"board_nixos_hardware_commit,omitempty"`
	BoardProfile  string   `json:"board_nixos_hardware_profile,omitempty"`
	Profile       string   `json:"profile"`
	Request       string   `json:"request"`
	Reason        string   `json:"reason"`
	PolicyVersion uint64   `json:"policy_version"`
	PolicyDigest  string   `json:"policy_digest"`
	Root          string   `json:"root"`
	RootHash      string   `json:"root_hash"`
	Upper         string   `json:"upper,omitempty"`
	PCR           int      `json:"pcr"`
	Banks         []string `json:"banks"`
	// IgnoredEvents counts events after the separator: replayed, never trusted.
	IgnoredEvents int     `json:"ignored_events"`
	Checks        []Check `json:"checks"`
	Verdict       string  `json:"verdict"` // "ok" or "fail"
	OK            bool    `json:"ok"`
}

func (v *Verdict) check(name string, err error, detail string) bool {
	c := Check{Name: name, OK: err == nil, Detail: detail}
	if err != nil {
		c.Detail = err.Error()
	}
	v.Checks = append(v.Checks, c)
	return err == nil
}

// ParseQuote decodes and checks a TPMS_ATTEST of type quote.
func ParseQuote(b []byte) (att *tpm2.TPMSAttest, qi *tpm2.TPMSQuoteInfo, err error) {
	if len(b) == 0 || len(b) > MaxQuoteSize {
		return nil, nil, fmt.Errorf("quote: %d bytes, want 1-%d", len(b), MaxQuoteSize)
	}
	defer func() { // a malformed structure must never crash the verifier
		if r := recover(); r != nil {
			att, qi, err = nil, nil, fmt.Errorf("quote: malformed TPMS_ATTEST (%v)", r)
		}
	}()
	att, err = tpm2.Unmarshal[tpm2.TPMSAttest](b)
	if err != nil {
		return nil, nil, fmt.Errorf("quote: TPMS_ATTEST: %w", err)
	}
	if !bytes.Equal(tpm2.Marshal(att), b) {
		return nil, nil, errors.New("quote: trailing bytes after TPMS_ATTEST")
	}
	if err := att.Magic.Check(); err != nil {
		return nil, nil, errors.New("quote: magic is not TPM_GENERATED_VALUE")
	}
	if att.Type != tpm2.TPMSTAttestQuote {
		return nil, nil, fmt.Errorf("quote: attestation type %#x, not a quote", att.Type)
	}
	qi, err = att.Attested.Quote()
	if err != nil {
		return nil, nil, fmt.Errorf("quote: %w", err)
	}
	return att, qi, nil
}

// ParseSignature decodes a TPMT_SIGNATURE that must be ECDSA with SHA-256.
func ParseSignature(b []byte) (r, s *big.Int, err error) {
	if len(b) == 0 || len(b) > MaxSigSize {
		return nil, nil, fmt.Errorf("signature: %d bytes, want 1-%d", len(b), MaxSigSize)
	}
	defer func() {
		if p := recover(); p != nil {
			r, s, err = nil, nil, fmt.Errorf("signature: malformed TPMT_SIGNATURE (%v)", p)
		}
	}()
	sig, err := tpm2.Unmarshal[tpm2.TPMTSignature](b)
	if err != nil {
		return nil, nil, fmt.Errorf("signature: TPMT_SIGNATURE: %w", err)
	}
	if sig.SigAlg != tpm2.TPMAlgECDSA {
		return nil, nil, fmt.Errorf("signature: algorithm %#x, want ECDSA", sig.SigAlg)
	}
	ecc, err := sig.Signature.ECDSA()
	if err != nil {
		return nil, nil, fmt.Errorf("signature: %w", err)
	}
	if ecc.Hash != tpm2.TPMAlgSHA256 {
		return nil, nil, fmt.Errorf("signature: hash %#x, want SHA-256", ecc.Hash)
	}
	return new(big.Int).SetBytes(ecc.SignatureR.Buffer), new(big.Int).SetBytes(ecc.SignatureS.Buffer), nil
}

// Verify checks evidence against the enrolled AK, the expected nonce and
// the known signed policies. It always returns a verdict listing every
// check; the error is non-nil exactly when the verdict is not ok.
func Verify(ev *Evidence, known []KnownPolicy, nonce []byte, ak *ecdsa.PublicKey) (*Verdict, error) {
	v := &Verdict{PCR: -1, Verdict: "fail"}
	v.verify(ev, known, nonce, ak)
	v.OK = len(v.Checks) > 0
	var first *Check
	for i := range v.Checks {
		if !v.Checks[i].OK {
			v.OK = false
			if first == nil {
				first = &v.Checks[i]
			}
		}
	}
	if v.OK {
		v.Verdict = "ok"
		return v, nil
	}
	if first == nil {
		return v, errors.New("attestation rejected: no checks ran")
	}
	return v, fmt.Errorf("attestation rejected: %s: %s", first.Name, first.Detail)
}

func (v *Verdict) verify(ev *Evidence, known []KnownPolicy, nonce []byte, ak *ecdsa.PublicKey) {
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

	// 3. The log parses and replays to the quoted PCR digest.
	lg, err := measure.ParseLog(ev.EventLog)
	if !v.check("event-log", err, "crypto-agile log with a Spec ID Event03 header") {
		return
	}
	for _, h := range lg.Banks {
		v.Banks = append(v.Banks, measure.BankName(h))
	}
	pcr, order, err := quotedPCR(qi.PCRSelect, lg.Banks)
	if !v.check("quote-selection", err, "") {
		return
	}
	v.PCR = pcr
	replay := lg.Replay(pcr)
	dg := sha256.New()
	for _, h := range order {
		dg.Write(replay[h])
	}
	err = nil
	if !bytes.Equal(dg.Sum(nil), qi.PCRDigest.Buffer) {
		err = fmt.Errorf("log replays PCR %d to a digest other than the quoted %x (log tampered or truncated)", pcr, qi.PCRDigest.Buffer)
	}
	replayOK := v.check("log-replay", err, fmt.Sprintf("PCR %d, banks %s", pcr, strings.Join(v.Banks, ",")))
	if len(ev.PCRs) > 0 {
		v.check("pcrs-file", checkPCRFile(ev.PCRs, replay, pcr), "pcrs.txt agrees with the replay")
	}
	if !replayOK {
		return
	}

	// 4. The events before the separator are exactly one successful boot.
	evs, ignored, err := preSeparator(lg, pcr)
	v.IgnoredEvents = ignored
	if !v.check("event-sequence", err, "policy, keyset, board, decision, root, separator; later events ignored") {
		return
	}
	v.interpret(evs, known, pcr)
}

// quotedPCR checks that the quote selects exactly one PCR, the same in
// every bank of the log and in nothing else, and returns it with the
// banks in quote order.
func quotedPCR(sel tpm2.TPMLPCRSelection, banks []crypto.Hash) (int, []crypto.Hash, error) {
	pcr := -1
	var order []crypto.Hash
	for _, s := range sel.PCRSelections {
		h := measure.HashForAlg(uint16(s.Hash))
		if h == 0 || !slices.Contains(banks, h) || slices.Contains(order, h) {
			return -1, nil, fmt.Errorf("quote selects bank %#x, not a log bank or twice", s.Hash)
		}
		var set []int
		for i, b := range s.PCRSelect {
			for bit := 0; bit < 8; bit++ {
				if b&(1<<bit) != 0 {
					set = append(set, i*8+bit)
				}
			}
		}
		if len(set) != 1 || (pcr >= 0 && set[0] != pcr) {
			return -1, nil, fmt.Errorf("quote selects PCRs %v in %s, want one and the same PCR in every bank", set, measure.BankName(h))
		}
		pcr = set[0]
		order = append(order, h)
	}
	if len(order) != len(banks) {
		return -1, nil, fmt.Errorf("quote covers %d of the log's %d banks", len(order), len(banks))
	}
	return pcr, order, nil
}

func checkPCRFile(vs []PCRValue, replay map[crypto.Hash][]byte, pcr int) error {
	for _, p := range vs {
		if p.Index == pcr && replay[p.Bank] != nil && !bytes.Equal(p.Value, replay[p.Bank]) {
			return fmt.Errorf("%s:%d is %x, the log replays to %x", measure.BankName(p.Bank), pcr, p.Value, replay[p.Bank])
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
	var evs []measure.Event
	for i, rec := range lg.Records {
		if int(rec.PCR) != pcr {
			return nil, 0, fmt.Errorf("record %d: PCR %d before the separator", i+1, rec.PCR)
		}
		ev, err := rec.Tagged()
		if err != nil {
			return nil, 0, fmt.Errorf("record %d: %w", i+1, err)
		}
		for j, h := range lg.Banks {
			if !bytes.Equal(rec.Digests[j], measure.Digest(h, ev)) {
				return nil, 0, fmt.Errorf("record %d (%s): %s digest does not match its data", i+1, ev.Tag, measure.BankName(h))
			}
		}
		if ev.Tag == measure.TagFailure {
			return nil, 0, fmt.Errorf("record %d: boot refused: %s", i+1, strings.TrimSpace(string(ev.Data)))
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
func (v *Verdict) interpret(evs []measure.Event, known []KnownPolicy, pcr int) {
	byTag := map[measure.Tag]measure.Event{}
	for _, ev := range evs {
		byTag[ev.Tag] = ev
	}

	// Policy: one of the known signed policies, for this PCR.
	var kp *KnownPolicy
	for i := range known {
		if bytes.Equal(measure.PolicyEvent(known[i].Raw).Data, byTag[measure.TagPolicy].Data) {
			kp = &known[i]
			break
		}
	}
	var err error
	if fs, ferr := measure.Fields(byTag[measure.TagPolicy].Data); ferr == nil && len(fs) == 1 {
		v.PolicyDigest = fs[0][1]
	}
	switch {
	case kp == nil:
		err = fmt.Errorf("policy sha256 %s is not among the %d known policies", v.PolicyDigest, len(known))
	case kp.PCR != pcr:
		err = fmt.Errorf("policy measures into PCR %d, the quote covers PCR %d", kp.PCR, pcr)
	}
	if v.check("policy-known", err, "") {
		v.PolicyVersion = kp.Version
	}

	_, err = measure.Fields(byTag[measure.TagKeySet].Data)
	if err == nil && kp != nil && kp.KeyIDs != nil &&
		!bytes.Equal(byTag[measure.TagKeySet].Data, measure.KeySetEvent(kp.KeyIDs, kp.Threshold).Data) {
		err = errors.New("the device trusts another key set than the one given")
	}
	v.check("keyset", err, "")

	board, id, idSum, err := measure.BoardFields(byTag[measure.TagBoard].Data)
	if v.check("board", err, "") {
		v.Board, v.Identity, v.IdentitySHA256 = board, id, idSum
		src, _ := measure.BoardEventSource(byTag[measure.TagBoard].Data) // BoardFields checked it
		v.BoardCommit, v.BoardProfile = src.Commit, src.Profile
	}

	d, ok := measure.AllDecisionEvents()[string(byTag[measure.TagDecision].Data)]
	err = nil
	if !ok {
		err = fmt.Errorf("decision %q is not one /init can produce", byTag[measure.TagDecision].Data)
	}
	if v.check("decision", err, "exactly one decision, before the separator") {
		v.Request, v.Profile, v.Reason = string(d.Request), string(d.Profile), string(d.Reason)
	}

	v.check("root", v.root(byTag[measure.TagRoot].Data, d, ok, kp), "")
}

func (v *Verdict) root(data []byte, d measure.Decision, haveDecision bool, kp *KnownPolicy) error {
	fs, err := measure.Fields(data)
	if err != nil {
		return err
	}
	m := map[string]string{}
	for _, f := range fs {
		m[f[0]] = f[1]
	}
	v.Root = m["root"]
	switch v.Root {
	case string(measure.RootVerity):
		v.RootHash = m["root-hash"]
		if v.RootHash == "" {
			return errors.New("verity root without a root hash")
		}
	case string(measure.RootOverlay):
		v.RootHash, v.Upper = m["lower-hash"], m["upper"]
		if l := m["upper-label"]; l != "" {
			v.Upper += ":" + l
		}
	default:
		return fmt.Errorf("unknown root kind %q", v.Root)
	}
	if again := measure.RootEvent(measure.Root{Kind: measure.RootKind(v.Root), RootHash: rootHashOrEmpty(v.RootHash),
		Upper: m["upper"], UpperLabel: m["upper-label"]}); !bytes.Equal(again.Data, data) {
		return errors.New("root event is not canonical")
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
