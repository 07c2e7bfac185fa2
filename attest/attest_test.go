package attest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/simulator"

	"github.com/mcinit/mcinit/boot"
	"github.com/mcinit/mcinit/decide"
	"github.com/mcinit/mcinit/identity"
	"github.com/mcinit/mcinit/measure"
)

var (
	testPolicy = []byte("format = 1\nversion = 20261201\npcr = 13\n")
	rootHash   = strings.Repeat("ab", 32)
)

func known() []KnownPolicy {
	return []KnownPolicy{{Raw: []byte("some older policy"), Version: 1, PCR: 13},
		{Raw: testPolicy, Version: 20261201, PCR: 13, RootHashes: []string{rootHash}, KeyIDs: []string{strings.Repeat("1", 64)}, Threshold: 1}}
}

func bootFor(p decide.Profile) boot.Facts {
	b := boot.Facts{
		PolicyRaw: testPolicy, KeyIDs: []string{strings.Repeat("1", 64)}, Threshold: 1,
		Board:    "qemu-x86_64",
		Identity: identity.Identity{Source: identity.SourceDMI, Arch: "amd64", ProductName: "Standard PC", Serial: "1234"},
		Decision: decide.Facts{Request: decide.RequestNone, Profile: decide.Production, Reason: decide.ReasonDefault},
		Root:     measure.Root{Kind: measure.RootVerity, RootHash: rootHash},
	}
	if p == decide.Development {
		b.Decision = decide.Facts{Request: decide.RequestDevelopment, Profile: decide.Development, Reason: decide.ReasonDevBoard}
		b.Root = measure.Root{Kind: measure.RootOverlay, RootHash: rootHash, Upper: "tmpfs"}
	}
	return b
}

// device runs events through a Recorder on the simulator and quotes.
func device(t *testing.T, events []measure.Event, nonce []byte) (*Evidence, *ecdsa.PublicKey, []crypto.Hash) {
	t.Helper()
	sim, err := simulator.OpenSimulator()
	if err != nil {
		t.Fatalf("simulator: %v", err)
	}
	defer sim.Close()
	return record(t, sim, events, nonce)
}

func record(t *testing.T, tpm transport.TPM, events []measure.Event, nonce []byte) (*Evidence, *ecdsa.PublicKey, []crypto.Hash) {
	t.Helper()
	r, err := measure.NewRecorder(tpm, 13)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		if err := r.Record(ev); err != nil {
			t.Fatal(err)
		}
	}
	ev, err := Quote(tpm, 13, r.Banks(), nonce)
	if err != nil {
		t.Fatal(err)
	}
	ev.EventLog = r.Log()
	ak, err := ParsePublicPEM(ev.AKPub)
	if err != nil {
		t.Fatal(err)
	}
	return ev, ak, r.Banks()
}

func failed(v *Verdict, name string) bool {
	for _, c := range v.Checks {
		if c.Name == name {
			return !c.OK
		}
	}
	return false
}

func TestVerifyProductionAndDevelopment(t *testing.T) {
	nonce := []byte("fresh nonce 1234")
	for _, p := range []decide.Profile{decide.Production, decide.Development} {
		ev, ak, banks := device(t, bootFor(p).Events(), nonce)
		v, err := Verify(ev, known(), nonce, ak, unanchoredOK)
		if err != nil {
			t.Fatalf("%s: %v\n%+v", p, err, v.Checks)
		}
		if v.Profile != string(p) || v.PolicyVersion != 20261201 || v.RootHash != rootHash || v.Board != "qemu-x86_64" {
			t.Errorf("%s: verdict %+v", p, v)
		}
		// The verdict's PCR equals the offline prediction.
		pr, err := Predict(bootFor(p).Events(), 13, banks)
		if err != nil {
			t.Fatal(err)
		}
		for _, pv := range ev.PCRs {
			if !bytes.Equal(pv.Value, pr.Values[pv.Bank]) {
				t.Errorf("%s: %s PCR %x, predicted %x", p, measure.BankName(pv.Bank), pv.Value, pr.Values[pv.Bank])
			}
		}
		if !bytes.Equal(pr.Log, ev.EventLog) {
			t.Errorf("%s: predicted log differs from the device's", p)
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	nonce := []byte("nonce-for-rejects")
	dev := bootFor(decide.Development).Events()

	// A fake "production" extended after the separator is replayed but ignored.
	withFake := append(append([]measure.Event(nil), dev...), boot.DecisionEvent(decide.Facts{Request: decide.RequestProduction, Profile: decide.Production, Reason: decide.ReasonRequested}))
	ev, ak, _ := device(t, withFake, nonce)
	v, err := Verify(ev, known(), nonce, ak, unanchoredOK)
	if err != nil || v.Profile != "development" || v.IgnoredEvents != 1 {
		t.Errorf("fake production after separator: err %v, profile %q, ignored %d", err, v.Profile, v.IgnoredEvents)
	}

	// Same evidence, other failures.
	cases := []struct {
		name  string
		check string
		mod   func(e *Evidence, k *[]KnownPolicy, n *[]byte, ak **ecdsa.PublicKey)
	}{
		{"wrong nonce", "nonce", func(e *Evidence, k *[]KnownPolicy, n *[]byte, ak **ecdsa.PublicKey) { *n = []byte("other nonce") }},
		{"another key", "ak-signature", func(e *Evidence, k *[]KnownPolicy, n *[]byte, ak **ecdsa.PublicKey) {
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			*ak = &key.PublicKey
		}},
		{"truncated log", "log-replay", func(e *Evidence, k *[]KnownPolicy, n *[]byte, ak **ecdsa.PublicKey) {
			l, _ := measure.BuildLog(13, mustBanks(e), withFake[:len(withFake)-1])
			e.EventLog = l
		}},
		{"cut log", "event-log", func(e *Evidence, k *[]KnownPolicy, n *[]byte, ak **ecdsa.PublicKey) {
			e.EventLog = e.EventLog[:len(e.EventLog)-3]
		}},
		{"data swapped, digests kept", "event-sequence", func(e *Evidence, k *[]KnownPolicy, n *[]byte, ak **ecdsa.PublicKey) {
			e.EventLog = bytes.Replace(e.EventLog, []byte("reason=dev-allowed-board"), []byte("reason=dev-allowed-grant"), 1)
		}},
		{"other key set", "keyset", func(e *Evidence, k *[]KnownPolicy, n *[]byte, ak **ecdsa.PublicKey) {
			(*k)[1].KeyIDs, (*k)[1].Threshold = []string{strings.Repeat("2", 64)}, 1
		}},
		{"unknown policy", "policy-known", func(e *Evidence, k *[]KnownPolicy, n *[]byte, ak **ecdsa.PublicKey) { *k = (*k)[:1] }},
		{"tampered quote", "ak-signature", func(e *Evidence, k *[]KnownPolicy, n *[]byte, ak **ecdsa.PublicKey) {
			e.Quote = append([]byte(nil), e.Quote...)
			e.Quote[len(e.Quote)-1] ^= 1
		}},
		{"pcrs.txt lies", "pcrs-file", func(e *Evidence, k *[]KnownPolicy, n *[]byte, ak **ecdsa.PublicKey) {
			e.PCRs = append([]PCRValue(nil), e.PCRs...)
			e.PCRs[0].Value = make([]byte, len(e.PCRs[0].Value))
		}},
	}
	for _, c := range cases {
		e := *ev
		k, n, key := known(), append([]byte(nil), nonce...), ak
		c.mod(&e, &k, &n, &key)
		v, err := Verify(&e, k, n, key, unanchoredOK)
		if err == nil || v.OK || !failed(v, c.check) {
			t.Errorf("%s: err %v, check %s failed=%v, checks %+v", c.name, err, c.check, failed(v, c.check), v.Checks)
		}
	}
}

func mustBanks(e *Evidence) []crypto.Hash {
	l, err := measure.ParseLog(e.EventLog)
	if err != nil {
		return nil
	}
	return l.Banks
}

// Logs whose TPM extends match but whose sequence is wrong.
func TestVerifyRejectsBadSequences(t *testing.T) {
	nonce := []byte("nonce-seq")
	prod := bootFor(decide.Production).Events()
	dev := bootFor(decide.Development).Events()
	noDecision := []measure.Event{dev[0], dev[1], dev[2], dev[4], dev[5], prod[3]}
	twoDecisions := []measure.Event{dev[0], dev[1], dev[2], dev[3], prod[3], dev[4], dev[5]}
	noSeparator := prod[:5]
	failure := []measure.Event{prod[0], measure.FailureEvent("policy signature invalid"), measure.SeparatorEvent()}
	mismatch := []measure.Event{prod[0], prod[1], prod[2], prod[3], dev[4], prod[5]} // production with an overlay root
	for name, evs := range map[string][]measure.Event{
		"decision only after separator": noDecision, "two decisions": twoDecisions,
		"no separator": noSeparator, "failure": failure,
	} {
		ev, ak, _ := device(t, evs, nonce)
		v, err := Verify(ev, known(), nonce, ak, unanchoredOK)
		if err == nil || !failed(v, "event-sequence") {
			t.Errorf("%s: err %v, checks %+v", name, err, v.Checks)
		}
	}
	ev, ak, _ := device(t, mismatch, nonce)
	if v, err := Verify(ev, known(), nonce, ak, unanchoredOK); err == nil || !failed(v, "root") {
		t.Errorf("production with overlay root: err %v", err)
	}
}

// TestVerifyLongIdentity: two units whose long identities differ only in
// the last field (the UUID) produce different verdicts: the board event
// carries the whole identity, or its digest when it is too long to carry.
func TestVerifyLongIdentity(t *testing.T) {
	nonce := []byte("fresh nonce 1234")
	long := strings.Repeat("V", 600)
	sums := map[string]bool{}
	for _, unit := range []identity.Identity{
		{Source: identity.SourceDMI, Arch: "amd64", SysVendor: long, SystemUUID: "1"},
		{Source: identity.SourceDMI, Arch: "amd64", SysVendor: long, SystemUUID: "2"},
		{Source: identity.SourceDMI, Arch: "amd64", SysVendor: long + long + long + long, SystemUUID: "1"},
		{Source: identity.SourceDMI, Arch: "amd64", SysVendor: long + long + long + long, SystemUUID: "2"},
	} {
		b := bootFor(decide.Production)
		b.Identity = unit
		id := unit.String()
		ev, ak, _ := device(t, b.Events(), nonce)
		v, err := Verify(ev, known(), nonce, ak, unanchoredOK)
		if err != nil {
			t.Fatalf("%d-byte identity: %v\n%+v", len(id), err, v.Checks)
		}
		verbatim := v.Identity == id
		if !verbatim && (v.Identity != "" || len(id) < measure.MaxIdentity) {
			t.Errorf("%d-byte identity: verdict identity %q", len(id), v.Identity)
		}
		if sums[v.IdentitySHA256] {
			t.Errorf("%d-byte identity: same identity digest as another unit", len(id))
		}
		sums[v.IdentitySHA256] = true
	}
}

// unanchoredOK verifies mcinit's PCR alone, as before firmware anchoring:
// the simulator has no firmware.
var unanchoredOK = Options{AllowUnanchored: true}
