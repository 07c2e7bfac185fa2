package attest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport/simulator"

	"github.com/mcinit/mcinit/decide"
	"github.com/mcinit/mcinit/fwlog"
	"github.com/mcinit/mcinit/measure"
)

// fwLog reads a firmware log captured from OVMF (see fwlog's testdata).
func fwLog(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "fwlog", "testdata", name+".bin"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// chainDevice replays a firmware log into the simulator's PCRs (as the
// firmware and the stub would have extended them), runs mcinit's events
// and quotes the firmware PCRs with mcinit's: evidence version 2.
func chainDevice(t *testing.T, fwb []byte, events []measure.Event, nonce []byte) (*Evidence, *ecdsa.PublicKey) {
	t.Helper()
	sim, err := simulator.OpenSimulator()
	if err != nil {
		t.Fatalf("simulator: %v", err)
	}
	defer sim.Close()
	fw, err := fwlog.Parse(fwb)
	if err != nil {
		t.Fatal(err)
	}
	r, err := measure.NewRecorder(sim, 13)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range fw.Records {
		if rec.Type == fwlog.EvNoAction {
			continue
		}
		var d tpm2.TPMLDigestValues
		for _, h := range r.Banks() {
			d.Digests = append(d.Digests, tpm2.TPMTHA{HashAlg: tpm2.TPMIAlgHash(measure.AlgID(h)), Digest: fw.Digest(rec, h)})
		}
		if _, err := (tpm2.PCRExtend{PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(rec.PCR), Auth: tpm2.PasswordAuth(nil)}, Digests: d}).Execute(sim); err != nil {
			t.Fatalf("extend PCR %d: %v", rec.PCR, err)
		}
	}
	for _, ev := range events {
		if err := r.Record(ev); err != nil {
			t.Fatal(err)
		}
	}
	pcrs := append(slices.Clone(FirmwarePCRs), 13)
	slices.Sort(pcrs)
	ev, err := QuotePCRs(sim, pcrs, r.Banks(), nonce)
	if err != nil {
		t.Fatal(err)
	}
	ev.EventLog, ev.FirmwareLog = r.Log(), fwb
	ak, err := ParsePublicPEM(ev.AKPub)
	if err != nil {
		t.Fatal(err)
	}
	return ev, ak
}

// goldenFromLog takes the captured UKI's golden values from its own boot:
// the first PCR 4 application and the PCR 11 replay. (The UKI itself, 16
// MiB, is not in the repository; uki's tests and the e2e chain tests check
// that GoldenFromUKI computes these from the file.)
func goldenFromLog(t *testing.T, name string) *UKIGolden {
	t.Helper()
	fw, err := fwlog.Parse(fwLog(t, name))
	if err != nil {
		t.Fatal(err)
	}
	apps, err := fw.BootApps()
	if err != nil || len(apps) == 0 {
		t.Fatalf("apps %v %v", apps, err)
	}
	g := &UKIGolden{Version: GoldenVersion, Name: "fleet.efi", Authenticode: map[string]string{}, PCR11: map[string]string{}}
	p11 := fw.Replay(fwlog.PCRStub)
	for _, h := range fw.Banks {
		g.Authenticode[measure.BankName(h)] = hex.EncodeToString(apps[0].Digests[h])
		g.PCR11[measure.BankName(h)] = hex.EncodeToString(p11[h])
	}
	return g
}

func checkNames(v *Verdict) (failed []string) {
	for _, c := range v.Checks {
		if !c.OK {
			failed = append(failed, c.Name)
		}
	}
	return failed
}

func TestVerifyChain(t *testing.T) {
	nonce := []byte("chain nonce")
	prod := bootFor(decide.Production).Events()
	golden := goldenFromLog(t, "ovmf-x86_64-uki-sb-on")
	ev, ak := chainDevice(t, fwLog(t, "ovmf-x86_64-uki-sb-on"), prod, nonce)

	// The full chain: Secure Boot, the fleet's UKI, its own command line.
	v, err := Verify(ev, known(), nonce, ak, Options{UKIs: []*UKIGolden{golden}})
	if err != nil || v.Verdict != VerdictOK || v.Anchor != "firmware" || v.UKI != "fleet.efi" || v.SecureBoot == nil || !*v.SecureBoot {
		t.Fatalf("full chain: %v, verdict %+v", err, v)
	}
	seen := map[string]bool{}
	for _, c := range v.Checks {
		if seen[c.Name] {
			t.Errorf("check %s twice in one verdict", c.Name)
		}
		seen[c.Name] = true
	}
	if v.Profile != "production" || len(v.QuotedPCRs) != 11 || v.EvidenceVersion != EvidenceVersion {
		t.Errorf("full chain verdict %+v", v)
	}
	if len(v.Authorities) != 1 || !strings.HasPrefix(v.Authorities[0], "db:sha256:") {
		t.Errorf("authorities %q", v.Authorities)
	}

	// Another UKI booted (a forged PCR 13 from its own initramfs): PCR 4
	// and PCR 11 name it.
	other := &UKIGolden{Version: GoldenVersion, Name: "other.efi", Authenticode: map[string]string{"sha256": strings.Repeat("11", 32)}, PCR11: map[string]string{"sha256": strings.Repeat("22", 32)}}
	v, err = Verify(ev, known(), nonce, ak, Options{UKIs: []*UKIGolden{other}})
	if err == nil || v.Verdict != VerdictFail || !slices.Equal(checkNames(v), []string{"boot-image", "uki-sections"}) {
		t.Errorf("other UKI: %v, failed checks %v", err, checkNames(v))
	}
	if err == nil || !strings.Contains(err.Error(), "PCR 4") {
		t.Errorf("other UKI: error %v does not name PCR 4", err)
	}

	// No fleet UKIs and anchoring required: never ok.
	if v, err := Verify(ev, known(), nonce, ak, Options{}); err == nil || !slices.Contains(checkNames(v), "boot-image") {
		t.Errorf("no UKIs: %v, failed %v", err, checkNames(v))
	}
	// Allowed unanchored without UKIs: ok, but says so.
	if v, err := Verify(ev, known(), nonce, ak, Options{AllowUnanchored: true}); err != nil || v.Verdict != VerdictUnanchored || v.Anchor != "none" {
		t.Errorf("unanchored allowed: %v, verdict %q anchor %q", err, v.Verdict, v.Anchor)
	}

	// A firmware log that does not replay: one PCR 4 digest changed.
	bad := *ev
	fw, _ := fwlog.Parse(ev.FirmwareLog)
	apps, _ := fw.BootApps()
	d := fw.Digest(fw.Records[apps[0].Record-1], crypto.SHA256)
	bad.FirmwareLog = bytes.Replace(ev.FirmwareLog, d, bytes.Repeat([]byte{0x5a}, 32), 1)
	v, err = Verify(&bad, known(), nonce, ak, Options{UKIs: []*UKIGolden{golden}})
	if err == nil || !slices.Equal(checkNames(v), []string{"log-replay"}) || !strings.Contains(err.Error(), "PCR 4 (sha256)") {
		t.Errorf("non-replaying firmware log: %v, failed %v", err, checkNames(v))
	}

	// A firmware log that claims mcinit's PCR.
	bad.FirmwareLog = append(slices.Clone(ev.FirmwareLog), tagRecord(fw.Banks, 13)...)
	if v, err := Verify(&bad, known(), nonce, ak, Options{UKIs: []*UKIGolden{golden}}); err == nil || !slices.Equal(checkNames(v), []string{"firmware-log"}) {
		t.Errorf("firmware event in PCR 13: %v, failed %v", err, checkNames(v))
	}
	// The systemd stub's system extensions in PCR 13: named.
	bad.FirmwareLog = append(slices.Clone(ev.FirmwareLog), iplRecord(fw.Banks, 13, StubSysextEvent)...)
	v, err = Verify(&bad, known(), nonce, ak, Options{UKIs: []*UKIGolden{golden}})
	if err == nil || !slices.Equal(checkNames(v), []string{"firmware-log"}) ||
		!strings.Contains(err.Error(), `firmware log extends PCR 13, mcinit's: 1 EV_IPL event(s), the first "System extension initrd"`) ||
		!strings.Contains(err.Error(), "system extensions") {
		t.Errorf("stub sysext event in PCR 13: %v, failed %v", err, checkNames(v))
	}
}

// iplRecord is an EV_IPL record in pcr with zero digests and desc as its
// NUL-terminated UTF-16 data, as the systemd stub logs.
func iplRecord(banks []crypto.Hash, pcr uint32, desc string) []byte {
	b := []byte{byte(pcr), 0, 0, 0, 0x0d, 0, 0, 0, byte(len(banks)), 0, 0, 0}
	for _, h := range banks {
		id := measure.AlgID(h)
		b = append(b, byte(id), byte(id>>8))
		b = append(b, make([]byte, h.Size())...)
	}
	var data []byte
	for _, r := range desc + "\x00" {
		data = append(data, byte(r), 0)
	}
	return append(append(b, byte(len(data)), 0, 0, 0), data...)
}

// tagRecord is an EV_EVENT_TAG record in pcr with zero digests.
func tagRecord(banks []crypto.Hash, pcr uint32) []byte {
	b := []byte{byte(pcr), 0, 0, 0, 6, 0, 0, 0, byte(len(banks)), 0, 0, 0}
	for _, h := range banks {
		id := measure.AlgID(h)
		b = append(b, byte(id), byte(id>>8))
		b = append(b, make([]byte, h.Size())...)
	}
	return append(b, 0, 0, 0, 0)
}

func TestVerifyChainPlatformPCRs(t *testing.T) {
	nonce := []byte("platform")
	ev, ak := chainDevice(t, fwLog(t, "ovmf-x86_64-uki-sb-on"), bootFor(decide.Production).Events(), nonce)
	fw, err := fwlog.Parse(ev.FirmwareLog)
	if err != nil {
		t.Fatal(err)
	}
	golden := goldenFromLog(t, "ovmf-x86_64-uki-sb-on")
	if err := golden.SetPlatform(fw); err != nil {
		t.Fatal(err)
	}
	// Through the file format, as -golden reads it.
	b, err := json.Marshal(golden)
	if err != nil {
		t.Fatal(err)
	}
	g, err := ParseGolden(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Platform) != len(PlatformPCRs) {
		t.Fatalf("platform PCRs %v", g.Platform)
	}
	v, err := Verify(ev, known(), nonce, ak, Options{UKIs: []*UKIGolden{g}})
	if err != nil || v.Verdict != VerdictOK || !slices.ContainsFunc(v.Checks, func(c Check) bool { return c.Name == "platform" && c.OK }) {
		t.Fatalf("golden platform: %v, checks %+v", err, v.Checks)
	}
	// Another firmware (one PCR 0 value): rejected, naming it.
	g.Platform["0"]["sha256"] = strings.Repeat("ab", 32)
	v, err = Verify(ev, known(), nonce, ak, Options{UKIs: []*UKIGolden{g}})
	if err == nil || !slices.Equal(checkNames(v), []string{"platform"}) || !strings.Contains(err.Error(), "PCR 0 (sha256) is ") {
		t.Errorf("other firmware: %v, failed %v", err, checkNames(v))
	}
	// Only PCRs 0-3, 5, 6, well-formed.
	for _, bad := range []string{`{"4":{"sha256":"` + strings.Repeat("00", 32) + `"}}`, `{"00":{"sha256":"` + strings.Repeat("00", 32) + `"}}`, `{"0":{"sha256":"00"}}`} {
		var m map[string]map[string]string
		if err := json.Unmarshal([]byte(bad), &m); err != nil {
			t.Fatal(err)
		}
		g.Platform = m
		b, _ := json.Marshal(g)
		if _, err := ParseGolden(b); err == nil {
			t.Errorf("ParseGolden accepted platform_pcrs %s", bad)
		}
	}
}

func TestVerifyChainSecureBootOff(t *testing.T) {
	// The same UKI, unsigned, under OVMF without Secure Boot, as a fleet
	// UKI (sbsign pads the image, so the signed one has another
	// Authenticode digest): PCR 4 and PCR 11 match, only PCR 7 says no.
	nonce := []byte("sb off")
	golden := goldenFromLog(t, "ovmf-x86_64-uki-sb-off")
	ev, ak := chainDevice(t, fwLog(t, "ovmf-x86_64-uki-sb-off"), bootFor(decide.Production).Events(), nonce)
	v, err := Verify(ev, known(), nonce, ak, Options{UKIs: []*UKIGolden{golden}})
	if err == nil || v.Verdict != VerdictFail || !slices.Equal(checkNames(v), []string{"secure-boot"}) || v.SecureBoot == nil || *v.SecureBoot {
		t.Errorf("SB off: %v, verdict %q, failed %v", err, v.Verdict, checkNames(v))
	}
}

func TestVerifyDirectBootUnanchored(t *testing.T) {
	// OVMF direct kernel boot (QEMU -kernel, Secure Boot on) with a
	// production PCR 13 (an rdinit= shell would extend the same): no stub
	// events in PCR 11, so nothing anchors it.
	nonce := []byte("direct")
	golden := goldenFromLog(t, "ovmf-x86_64-uki-sb-on")
	ev, ak := chainDevice(t, fwLog(t, "ovmf-x86_64-direct-sb-on"), bootFor(decide.Production).Events(), nonce)
	v, err := Verify(ev, known(), nonce, ak, Options{UKIs: []*UKIGolden{golden}})
	if err == nil || v.OK || v.Verdict != VerdictUnanchored || !slices.Equal(checkNames(v), []string{CheckAnchor}) {
		t.Errorf("direct boot: %v, verdict %q, failed %v", err, v.Verdict, checkNames(v))
	}
	// Without the firmware log, the same.
	ev.FirmwareLog = nil
	v, err = Verify(ev, known(), nonce, ak, Options{UKIs: []*UKIGolden{golden}})
	if err == nil || v.OK || v.Verdict != VerdictUnanchored || !strings.Contains(err.Error(), "no firmware log") {
		t.Errorf("no firmware log: %v, verdict %q", err, v.Verdict)
	}
}

// TestVerifyStatesTPMRequiredAndNeedsSeparator (issue 11 item 2): the
// verdict states tpm_required; a log without the leave-initramfs
// separator is never classified.
func TestVerifyStatesTPMRequiredAndNeedsSeparator(t *testing.T) {
	nonce := []byte("sep")
	k := known()
	k[1].TPMRequired = true
	ev, ak, _ := device(t, bootFor(decide.Production).Events(), nonce)
	v, err := Verify(ev, k, nonce, ak, unanchoredOK)
	if err != nil || v.TPMRequired == nil || !*v.TPMRequired {
		t.Fatalf("tpm_required: %v, %v", err, v.TPMRequired)
	}
	evs := bootFor(decide.Production).Events()
	ev, ak, _ = device(t, evs[:len(evs)-1], nonce) // everything but the separator
	v, err = Verify(ev, k, nonce, ak, unanchoredOK)
	if err == nil || v.Profile != "" || v.Board != "" || v.Verdict != VerdictFail || !slices.Equal(checkNames(v), []string{"event-sequence"}) {
		t.Errorf("no separator: %v, profile %q, failed %v", err, v.Profile, checkNames(v))
	}
}

// TestVerifyRefusesSHA1Only (issue 11 item 8).
func TestVerifyRefusesSHA1Only(t *testing.T) {
	nonce := []byte("sha1")
	ev, ak, _ := device(t, bootFor(decide.Production).Events(), nonce)
	lg, err := measure.BuildLog(13, []crypto.Hash{crypto.SHA1}, bootFor(decide.Production).Events())
	if err != nil {
		t.Fatal(err)
	}
	ev.EventLog = lg
	v, err := Verify(ev, known(), nonce, ak, unanchoredOK)
	if err == nil || !slices.Equal(checkNames(v), []string{"banks"}) {
		t.Errorf("SHA-1 only: %v, failed %v", err, checkNames(v))
	}
	opt := unanchoredOK
	opt.AllowSHA1Only = true
	if v, _ := Verify(ev, known(), nonce, ak, opt); slices.Contains(checkNames(v), "banks") {
		t.Errorf("SHA-1 allowed: failed %v", checkNames(v))
	}
}
