package policy_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/simulator"

	"github.com/mcinit/mcinit/decide"
	"github.com/mcinit/mcinit/measure"
	"github.com/mcinit/mcinit/policy"
	"github.com/mcinit/mcinit/signing"
)

func readPCR(t *testing.T, tpm transport.TPM, pcr int) []byte {
	t.Helper()
	rsp, err := tpm2.PCRRead{PCRSelectionIn: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{
		Hash: tpm2.TPMAlgSHA256, PCRSelect: tpm2.PCClientCompatible.PCRs(uint(pcr)),
	}}}}.Execute(tpm)
	if err != nil {
		t.Fatalf("PCR_Read %d: %v", pcr, err)
	}
	if len(rsp.PCRValues.Digests) != 1 {
		t.Fatalf("PCR_Read %d: %d digests", pcr, len(rsp.PCRValues.Digests))
	}
	return rsp.PCRValues.Digests[0].Buffer
}

func resetPCR(tpm transport.TPM, pcr int) error {
	_, err := tpm2.PCRReset{PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)}}.Execute(tpm)
	return err
}

func extendPCR(tpm transport.TPM, pcr int) error {
	_, err := tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
		Digests: tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{
			HashAlg: tpm2.TPMAlgSHA256, Digest: make([]byte, 32),
		}}},
	}.Execute(tpm)
	return err
}

func bootEvents(profile decide.Profile) []measure.Event {
	request, reason := decide.RequestNone, decide.ReasonDefault
	root := measure.Root{Kind: measure.RootVerity, RootHash: strings.Repeat("c", 64)}
	if profile == decide.Development {
		request, reason = decide.RequestDevelopment, decide.ReasonDevBoard
		root = measure.Root{Kind: measure.RootOverlay, Upper: "tmpfs"}
	}
	// The events of a boot, in measure.Order (boot.Facts builds them so).
	return []measure.Event{
		measure.PolicyEvent([]byte("format = 1\n")),
		measure.KeySetEvent([]string{strings.Repeat("a", 64)}, 1),
		measure.BoardEvent("qemu-x86_64", "source=dmi serial=1"),
		measure.DecisionEvent(string(request), string(profile), string(reason)),
		measure.RootEvent(root),
		measure.SeparatorEvent(),
	}
}

// TestResettablePCRReplay shows the attack of issue 11 item 1 on the TPM
// simulator: on PCR 16 a development root resets the PCR at locality 0 and
// replays the production events, reaching the production value. On PCR 13
// the reset fails. Then: every PCR the simulator lets locality 0 reset, or
// refuses to extend, is refused by the policy parser, and only those.
func TestResettablePCRReplay(t *testing.T) {
	sim, err := simulator.OpenSimulator()
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()

	replay := func(pcr int) (prod, forged []byte, resetErr error) {
		rec, err := measure.NewRecorder(sim, pcr)
		if err != nil {
			t.Fatal(err)
		}
		before := readPCR(t, sim, pcr)
		for _, ev := range bootEvents(decide.Production) {
			if err := rec.Record(ev); err != nil {
				t.Fatalf("PCR %d: %v", pcr, err)
			}
		}
		prod = readPCR(t, sim, pcr)
		// The development root, after switch_root: it appends what it likes,
		// then tries to wipe the PCR and forge the production history.
		if err := extendPCR(sim, pcr); err != nil {
			t.Fatal(err)
		}
		if resetErr = resetPCR(sim, pcr); resetErr != nil {
			return prod, nil, resetErr
		}
		if !bytes.Equal(readPCR(t, sim, pcr), before) {
			t.Fatalf("PCR %d: reset did not restore the start value", pcr)
		}
		rec2, _ := measure.NewRecorder(sim, pcr)
		for _, ev := range bootEvents(decide.Production) {
			if err := rec2.Record(ev); err != nil {
				t.Fatal(err)
			}
		}
		return prod, readPCR(t, sim, pcr), nil
	}
	prod, forged, err := replay(16)
	if err != nil {
		t.Fatalf("PCR 16 reset at locality 0: %v (expected to succeed)", err)
	}
	if !bytes.Equal(prod, forged) {
		t.Fatal("PCR 16: the replay did not reach the production value")
	}
	if _, _, err := replay(13); err == nil {
		t.Fatal("PCR 13 was reset at locality 0")
	}

	hash := strings.Repeat("0", 64)
	for pcr := 0; pcr <= 23; pcr++ {
		unsafe := resetPCR(sim, pcr) == nil || extendPCR(sim, pcr) != nil
		doc := fmt.Sprintf("format = 1\nversion = 1\nboards = [\"qemu-x86_64\"]\npcr = %d\n[[production.root]]\nroot_hash = %q\ndata_blocks = 1\n", pcr, hash)
		_, perr := policy.Parse([]byte(doc))
		firmware := pcr < 8 || pcr == 11 || pcr == 12 // 11, 12: the UKI's stub
		if (unsafe || firmware) != (perr != nil) {
			t.Errorf("PCR %d: resettable or not extendable at locality 0: %v, firmware: %v; Parse: %v", pcr, unsafe, firmware, perr)
		}
		if unsafe && perr != nil && !strings.Contains(perr.Error(), "field pcr: ") {
			t.Errorf("PCR %d: error does not name the field: %v", pcr, perr)
		}
	}
}

// TestResettablePCRSignedPolicy: a validly signed policy naming PCR 16 or 23
// does not verify, so /init (which only uses VerifyPolicy) refuses it.
func TestResettablePCRSignedPolicy(t *testing.T) {
	priv, err := signing.GenerateKey(signing.AlgEd25519)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := signing.PublicKeyFrom(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	ks, err := signing.NewKeySet(1, pub)
	if err != nil {
		t.Fatal(err)
	}
	for _, pcr := range []int{16, 23, 17} {
		doc := []byte(fmt.Sprintf("format = 1\nversion = 1\nboards = [\"qemu-x86_64\"]\npcr = %d\n[[production.root]]\nroot_hash = %q\ndata_blocks = 1\n", pcr, strings.Repeat("0", 64)))
		sig, err := signing.Sign(priv, doc)
		if err != nil {
			t.Fatal(err)
		}
		_, err = policy.VerifyPolicy(doc, signing.FormatSignatures([]signing.Signature{sig}), ks)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("field pcr: %d", pcr)) {
			t.Errorf("pcr %d: VerifyPolicy: %v", pcr, err)
		}
	}
}
