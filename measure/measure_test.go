package measure

import (
	"bytes"
	"crypto"
	"strings"
	"testing"

	"github.com/google/go-attestation/attest"
	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/simulator"
)

// sampleEvents are a production boot's events, in Order (boot.Facts
// builds them the same way).
func sampleEvents() []Event {
	return []Event{
		PolicyEvent([]byte("format = 1\nversion = 7\n")),
		KeySetEvent([]string{strings.Repeat("b", 64), strings.Repeat("a", 64)}, 1),
		BoardEvent("qemu-x86_64", "dmi:sys_vendor=QEMU;product_name=Standard PC;serial=SN\n1"),
		DecisionEvent("none", "production", "default"),
		RootEvent(Root{Kind: RootVerity, RootHash: strings.Repeat("C", 64)}),
		SeparatorEvent(),
	}
}

func TestEventEncoding(t *testing.T) {
	evs := sampleEvents()
	want := []string{
		"policy-sha256=",
		"threshold=1\nkey=" + strings.Repeat("a", 64) + "\nkey=" + strings.Repeat("b", 64) + "\n",
		"board=qemu-x86_64\nidentity=dmi:sys_vendor=QEMU;product_name=Standard PC;serial=SN%0A1\n",
		"request=none\nprofile=production\nreason=default\n",
		"root=verity\nroot-hash=" + strings.Repeat("c", 64) + "\n",
		"leave-initramfs",
	}
	for i, ev := range evs {
		if ev.Tag != Order()[i] {
			t.Errorf("event %d: tag %v, want %v", i, ev.Tag, Order()[i])
		}
		if !strings.HasPrefix(string(ev.Data), want[i]) {
			t.Errorf("event %d (%v): data %q, want prefix %q", i, ev.Tag, ev.Data, want[i])
		}
		if ev.Tag == TagSeparator {
			continue
		}
		if _, err := Fields(ev.Data); err != nil {
			t.Errorf("event %d (%v): Fields: %v", i, ev.Tag, err)
		}
	}
	fs, _ := Fields(evs[2].Data)
	if fs[1][1] != "dmi:sys_vendor=QEMU;product_name=Standard PC;serial=SN\n1" {
		t.Errorf("identity round trip: %q", fs[1][1])
	}
	dev := RootEvent(Root{Kind: RootOverlay, Upper: "partition", UpperLabel: "dev-upper"})
	if got := string(dev.Data); got != "root=overlay\nlower-hash=unverified\nupper=partition\nupper-label=dev-upper\n" {
		t.Errorf("overlay root: %q", got)
	}
	if got := string(FailureEvent("bad\x00cause %").Data); got != "cause=bad%00cause %25\n" {
		t.Errorf("failure: %q", got)
	}
}

func TestFieldsRejectsNonCanonical(t *testing.T) {
	for _, in := range []string{"", "a=b", "A=b\n", "a=%0a\n", "a=%4\n", "=b\n", "a\n", "a=\x01\n"} {
		if _, err := Fields([]byte(in)); err == nil {
			t.Errorf("Fields(%q) accepted", in)
		}
	}
}

func TestLogParseReplay(t *testing.T) {
	evs := sampleEvents()
	banks := []crypto.Hash{crypto.SHA384, crypto.SHA1, crypto.SHA256}
	b, err := BuildLog(13, banks, evs)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ParseLog(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Records) != len(evs) || len(l.Banks) != 3 || l.Banks[0] != crypto.SHA1 {
		t.Fatalf("parsed %d records, banks %v", len(l.Records), l.Banks)
	}
	for i, rec := range l.Records {
		ev, err := rec.Tagged()
		if err != nil || ev.Tag != evs[i].Tag || !bytes.Equal(ev.Data, evs[i].Data) {
			t.Errorf("record %d: %v %v", i, ev, err)
		}
	}
	exp := Expected(l.Banks, evs)
	for h, v := range l.Replay(13) {
		if !bytes.Equal(v, exp[h]) {
			t.Errorf("bank %s: replay %x, expected %x", BankName(h), v, exp[h])
		}
	}
	// A cut log never parses with all its records: inside a record it is an
	// error, at a record boundary it has fewer records (replay catches that).
	for n := 1; n < len(b); n++ {
		if l2, err := ParseLog(b[:n]); err == nil && len(l2.Records) == len(evs) {
			t.Fatalf("log cut to %d of %d bytes parsed with every record", n, len(b))
		}
	}
}

// openSim returns the go-tpm-tools reference simulator.
func openSim(t *testing.T) transport.TPMCloser {
	t.Helper()
	sim, err := simulator.OpenSimulator()
	if err != nil {
		t.Fatalf("simulator: %v", err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

func readPCR(t *testing.T, tpm transport.TPM, h crypto.Hash, pcr int) []byte {
	t.Helper()
	rsp, err := tpm2.PCRRead{PCRSelectionIn: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{
		Hash: tpm2.TPMIAlgHash(AlgID(h)), PCRSelect: tpm2.PCClientCompatible.PCRs(uint(pcr))}}}}.Execute(tpm)
	if err != nil {
		t.Fatalf("PCRRead: %v", err)
	}
	if len(rsp.PCRValues.Digests) != 1 {
		t.Fatalf("PCRRead %s: %d values", BankName(h), len(rsp.PCRValues.Digests))
	}
	return rsp.PCRValues.Digests[0].Buffer
}

func TestRecorderSimulator(t *testing.T) {
	sim := openSim(t)
	r, err := NewRecorder(sim, 13)
	if err != nil {
		t.Fatal(err)
	}
	evs := sampleEvents()
	for _, ev := range evs {
		if err := r.Record(ev); err != nil {
			t.Fatal(err)
		}
	}
	// Boot path budget: one GetCapability, then one PCR_Extend per event.
	if got, want := r.Commands(), 1+len(evs); got != want {
		t.Errorf("%d TPM commands, want %d", got, want)
	}
	t.Logf("banks %v, %d TPM commands for %d events", r.Banks(), r.Commands(), len(evs))
	exp := Expected(r.Banks(), evs)
	for _, h := range r.Banks() {
		if got := readPCR(t, sim, h, 13); !bytes.Equal(got, exp[h]) {
			t.Errorf("PCR 13 %s = %x, predicted %x", BankName(h), got, exp[h])
		}
	}

	// go-attestation parses and replays our log to the TPM's values.
	el, err := attest.ParseEventLog(r.Log())
	if err != nil {
		t.Fatalf("go-attestation ParseEventLog: %v", err)
	}
	// go-attestation accepts a PCR when any one bank replays, so check
	// each bank on its own.
	for _, h := range r.Banks() {
		if h != crypto.SHA1 && h != crypto.SHA256 {
			continue // go-attestation replays SHA-1 and SHA-256 only
		}
		good := attest.PCR{Index: 13, Digest: readPCR(t, sim, h, 13), DigestAlg: h}
		got, err := el.Verify([]attest.PCR{good})
		if err != nil {
			t.Fatalf("go-attestation Verify %s: %v", BankName(h), err)
		}
		if len(got) != len(evs) { // Verify passes vacuously for a PCR without events
			t.Errorf("go-attestation verified %d events in %s, want %d", len(got), BankName(h), len(evs))
		}
		bad := good
		bad.Digest = bytes.Repeat([]byte{1}, len(good.Digest))
		if _, err := el.Verify([]attest.PCR{bad}); err == nil {
			t.Errorf("go-attestation Verify accepted a wrong %s PCR value", BankName(h))
		}
	}
}

func TestRecorderFailsClosed(t *testing.T) {
	sim := openSim(t)
	r, err := NewRecorder(sim, 13)
	if err != nil {
		t.Fatal(err)
	}
	sim.Close() // the TPM goes away mid-boot
	if err := r.Record(sampleEvents()[0]); err == nil {
		t.Fatal("Record succeeded on a closed TPM")
	}
	if err := r.Record(SeparatorEvent()); err == nil || !strings.Contains(err.Error(), "failed earlier") {
		t.Errorf("second Record after failure: %v", err)
	}
	if _, err := ParseLog(r.Log()); err != nil {
		t.Errorf("log after failure: %v", err)
	}
}

func TestLogOnlyRecorder(t *testing.T) {
	r, err := NewRecorder(nil, 13)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range sampleEvents() {
		if err := r.Record(ev); err != nil {
			t.Fatal(err)
		}
	}
	want, _ := BuildLog(13, []crypto.Hash{crypto.SHA256}, sampleEvents())
	if !bytes.Equal(r.Log(), want) || r.Commands() != 0 {
		t.Errorf("log-only recorder log differs from BuildLog (%d commands)", r.Commands())
	}
}
