// Package attestbench measures the verifier: full verifications of a
// realistic quote + event log against one bare ECDSA P-256 signature check,
// the floor any quote verifier pays, and full-chain verifications (a real
// OVMF firmware log, PCRs 0-7, 11, 12, 13 quoted) against PCR-13-only ones.
// Run bench/attest.sh for the table.
package attestbench

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/big"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/simulator"
	"golang.org/x/sys/unix"

	"github.com/mcinit/mcinit/attest"
	mcboot "github.com/mcinit/mcinit/boot"
	"github.com/mcinit/mcinit/decide"
	"github.com/mcinit/mcinit/fwlog"
	"github.com/mcinit/mcinit/identity"
	"github.com/mcinit/mcinit/measure"
)

type fixture struct {
	ev    *attest.Evidence
	ak    *ecdsa.PublicKey
	nonce []byte
	known []attest.KnownPolicy
	opt   attest.Options
}

// newFixture boots a production device on the reference simulator: every
// active bank (SHA-1/256/384/512), six events, one quote of PCR 13.
func newFixture(b *testing.B) fixture { return boot(b, false) }

// boot is newFixture; with chain, the simulator's firmware PCRs first
// replay a real OVMF log (a Secure Boot UKI boot, fwlog/testdata) and the
// quote covers PCRs 0-7, 11, 12 and 13 with that log as evidence.
func boot(b *testing.B, chain bool) fixture {
	b.Helper()
	sim, err := simulator.OpenSimulator()
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	pol := []byte(strings.Repeat("# a realistic 2 KiB policy\n", 80))
	facts := mcboot.Facts{PolicyRaw: pol, KeyIDs: []string{strings.Repeat("a", 64), strings.Repeat("b", 64), strings.Repeat("c", 64)},
		Threshold: 2, Board: "qemu-x86_64",
		Identity: identity.Identity{Source: identity.SourceDMI, Arch: "amd64", SysVendor: "QEMU", ProductName: "Standard PC (Q35 + ICH9, 2009)", Serial: "SN-000042"},
		Decision: decide.Facts{Request: decide.RequestNone, Profile: decide.Production, Reason: decide.ReasonDefault},
		Root:     measure.Root{Kind: measure.RootVerity, RootHash: strings.Repeat("4f", 32)}}
	r, err := measure.NewRecorder(sim, 13)
	if err != nil {
		b.Fatal(err)
	}
	var fwb []byte
	var golden *attest.UKIGolden
	if chain {
		fwb, golden = replayFirmware(b, sim, r.Banks())
	}
	for _, e := range facts.Events() {
		if err := r.Record(e); err != nil {
			b.Fatal(err)
		}
	}
	nonce := []byte("0123456789abcdef0123456789abcdef")
	opt := attest.Options{AllowUnanchored: true}
	pcrs := []int{13}
	if chain {
		pcrs = append(slices.Clone(attest.FirmwarePCRs), 13)
		slices.Sort(pcrs)
		opt = attest.Options{UKIs: []*attest.UKIGolden{golden}}
	}
	ev, err := attest.QuotePCRs(sim, pcrs, r.Banks(), nonce)
	if err != nil {
		b.Fatal(err)
	}
	ev.EventLog, ev.FirmwareLog = r.Log(), fwb
	ak, err := attest.ParsePublicPEM(ev.AKPub)
	if err != nil {
		b.Fatal(err)
	}
	known := []attest.KnownPolicy{{Raw: pol, Version: 7, PCR: 13, RootHashes: []string{strings.Repeat("4f", 32)}}}
	v, err := attest.Verify(ev, known, nonce, ak, opt)
	if err != nil || (chain && v.Verdict != attest.VerdictOK) {
		b.Fatalf("%v %+v", err, v)
	}
	return fixture{ev, ak, nonce, known, opt}
}

// replayFirmware extends a captured firmware log's digests into the
// simulator and returns the log with its UKI's golden values (taken from
// the same boot: the first boot application and PCR 11).
func replayFirmware(b *testing.B, sim transport.TPM, banks []crypto.Hash) ([]byte, *attest.UKIGolden) {
	fwb, err := os.ReadFile("../../fwlog/testdata/ovmf-x86_64-uki-sb-on.bin")
	if err != nil {
		b.Fatal(err)
	}
	fw, err := fwlog.Parse(fwb)
	if err != nil {
		b.Fatal(err)
	}
	for _, rec := range fw.Records {
		if rec.Type == fwlog.EvNoAction {
			continue
		}
		var d tpm2.TPMLDigestValues
		for _, h := range banks {
			d.Digests = append(d.Digests, tpm2.TPMTHA{HashAlg: tpm2.TPMIAlgHash(measure.AlgID(h)), Digest: fw.Digest(rec, h)})
		}
		if _, err := (tpm2.PCRExtend{PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(rec.PCR), Auth: tpm2.PasswordAuth(nil)}, Digests: d}).Execute(sim); err != nil {
			b.Fatal(err)
		}
	}
	apps, err := fw.BootApps()
	if err != nil || len(apps) == 0 {
		b.Fatal(err)
	}
	g := &attest.UKIGolden{Version: attest.GoldenVersion, Name: "fleet.efi", Authenticode: map[string]string{}, PCR11: map[string]string{}}
	p11 := fw.Replay(fwlog.PCRStub)
	for _, h := range fw.Banks {
		g.Authenticode[measure.BankName(h)] = hex.EncodeToString(apps[0].Digests[h])
		g.PCR11[measure.BankName(h)] = hex.EncodeToString(p11[h])
	}
	return fwb, g
}

// BenchmarkVerify is one complete attest.Verify of PCR 13 alone.
func BenchmarkVerify(b *testing.B) { benchVerify(b, newFixture(b)) }

// BenchmarkVerifier is BenchmarkVerify through a Verifier prepared once
// (a verification service: the known policies' events computed once).
func BenchmarkVerifier(b *testing.B) {
	f := newFixture(b)
	vf := attest.NewVerifier(f.known, f.ak, f.opt)
	b.ResetTimer()
	cpu := cpuTime()
	for b.Loop() {
		if _, err := vf.Verify(f.ev, f.nonce); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

// BenchmarkVerifyChain is one full-chain attest.Verify: the firmware log
// replayed into PCRs 0-7, 11, 12, Secure Boot, the UKI, then mcinit's PCR.
func BenchmarkVerifyChain(b *testing.B) { benchVerify(b, boot(b, true)) }

func benchVerify(b *testing.B, f fixture) {
	b.SetBytes(int64(len(f.ev.Quote) + len(f.ev.Signature) + len(f.ev.EventLog) + len(f.ev.FirmwareLog)))
	b.ResetTimer()
	cpu := cpuTime()
	for b.Loop() {
		if _, err := attest.Verify(f.ev, f.known, f.nonce, f.ak, f.opt); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

// BenchmarkSideBySide runs the baseline and the verifications interleaved
// op by op (the order rotating each iteration), so that all of them see
// the same machine (load, frequency, caches): one b.N iteration is one
// operation of each. Each operation is timed alone in the thread's CPU
// time; it reports each side's median (robust to the cold caches and
// preemptions a shared machine adds to a few operations) and mean (GC
// assists included) CPU time per operation. bench/attest.sh takes the
// ratios.
func BenchmarkSideBySide(b *testing.B) {
	pcr13, chain := newFixture(b), boot(b, true)
	vf := attest.NewVerifier(pcr13.known, pcr13.ak, pcr13.opt)
	sig, err := tpm2.Unmarshal[tpm2.TPMTSignature](pcr13.ev.Signature)
	if err != nil {
		b.Fatal(err)
	}
	ecc, _ := sig.Signature.ECDSA()
	r, s := new(big.Int).SetBytes(ecc.SignatureR.Buffer), new(big.Int).SetBytes(ecc.SignatureS.Buffer)
	sides := []struct {
		name string
		op   func() error
		ns   []float64
	}{
		{name: "ecdsa", op: func() error {
			d := sha256.Sum256(pcr13.ev.Quote)
			if !ecdsa.Verify(pcr13.ak, d[:], r, s) {
				return errors.New("signature")
			}
			return nil
		}},
		{name: "verify", op: func() error {
			_, err := attest.Verify(pcr13.ev, pcr13.known, pcr13.nonce, pcr13.ak, pcr13.opt)
			return err
		}},
		{name: "verifier", op: func() error { _, err := vf.Verify(pcr13.ev, pcr13.nonce); return err }},
		{name: "chain", op: func() error {
			_, err := attest.Verify(chain.ev, chain.known, chain.nonce, chain.ak, chain.opt)
			return err
		}},
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// The clock's own cost, subtracted from every sample.
	var clock []float64
	for range 1000 {
		t0 := threadCPU()
		clock = append(clock, float64(threadCPU()-t0))
	}
	overhead := median(clock)
	b.ResetTimer()
	it := 0
	for b.Loop() {
		for k := range sides {
			sd := &sides[(k+it)%len(sides)]
			t0 := threadCPU()
			if err := sd.op(); err != nil {
				b.Fatal(err)
			}
			sd.ns = append(sd.ns, float64(threadCPU()-t0)-overhead)
		}
		it++
	}
	for _, sd := range sides {
		sum := 0.0
		for _, v := range sd.ns {
			sum += v
		}
		b.ReportMetric(median(sd.ns), sd.name+"-cpu-ns/op")
		b.ReportMetric(sum/float64(len(sd.ns)), sd.name+"-mean-cpu-ns/op")
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// threadCPU is the calling thread's CPU time to the nanosecond (the
// kernel's scheduler accounting).
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// cpuTime is the process's user+system CPU time. On a shared machine the
// wall clock per op mostly measures the other tenants; CPU time per op
// (GC included) is what one verifier core spends.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkBaselineECDSA is the baseline: hash the same quote and check
// its P-256 signature, nothing else.
func BenchmarkBaselineECDSA(b *testing.B) {
	f := newFixture(b)
	sig, err := tpm2.Unmarshal[tpm2.TPMTSignature](f.ev.Signature)
	if err != nil {
		b.Fatal(err)
	}
	ecc, _ := sig.Signature.ECDSA()
	r, s := new(big.Int).SetBytes(ecc.SignatureR.Buffer), new(big.Int).SetBytes(ecc.SignatureS.Buffer)
	b.ResetTimer()
	cpu := cpuTime()
	for b.Loop() {
		d := sha256.Sum256(f.ev.Quote)
		if !ecdsa.Verify(f.ak, d[:], r, s) {
			b.Fatal("signature")
		}
	}
	reportCPU(b, cpu)
}
