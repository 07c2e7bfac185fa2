package measure_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mcinit/mcinit/measure"
	"github.com/mcinit/mcinit/tpmdev"
	"github.com/mcinit/mcinit/tpmdev/swtpm"
)

// TestSwtpmInterop extends a boot's events into swtpm with three banks and
// checks the result with tpm2-tools: tpm2_pcrread shows the predicted
// values and tpm2_eventlog replays our log to the same values.
func TestSwtpmInterop(t *testing.T) {
	sw := swtpm.Start(t, swtpm.Config{Banks: "sha1,sha256,sha384"})
	tpm := sw.Open()
	r, err := measure.NewRecorder(tpm, 13)
	if err != nil {
		t.Fatal(err)
	}
	evs := []measure.Event{
		measure.PolicyEvent([]byte("policy")),
		measure.KeySetEvent([]string{strings.Repeat("0", 64)}, 1),
		measure.BoardEvent("b", "i"),
		measure.DecisionEvent("development", "development", "dev-allowed-board"),
		measure.RootEvent(measure.Root{Kind: measure.RootOverlay, RootHash: strings.Repeat("1", 64), Upper: "tmpfs"}),
		measure.SeparatorEvent(),
	}
	for _, ev := range evs {
		if err := r.Record(ev); err != nil {
			t.Fatal(err)
		}
	}
	tpm.Close()
	if len(r.Banks()) != 3 {
		t.Fatalf("banks %v, want sha1, sha256, sha384", r.Banks())
	}
	exp := measure.Expected(r.Banks(), evs)

	out, err := sw.Tool("tpm2_pcrread", "sha1:13+sha256:13+sha384:13")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range r.Banks() {
		want := strings.ToUpper(hex.EncodeToString(exp[h]))
		if !strings.Contains(out, "0x"+want) {
			t.Errorf("tpm2_pcrread %s: want 0x%s in\n%s", measure.BankName(h), want, out)
		}
	}

	logf := filepath.Join(t.TempDir(), "eventlog.bin")
	if err := os.WriteFile(logf, r.Log(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = sw.Tool("tpm2_eventlog", logf)
	if err != nil {
		t.Fatal(err)
	}
	got := eventlogPCRs(out)
	for _, h := range r.Banks() {
		if v := got[measure.BankName(h)]; !bytes.Equal(v, exp[h]) {
			t.Errorf("tpm2_eventlog replays %s PCR 13 to %x, want %x\n%s", measure.BankName(h), v, exp[h], out)
		}
	}
	if c := strings.Count(out, "EV_EVENT_TAG"); c != len(evs) {
		t.Errorf("tpm2_eventlog shows %d EV_EVENT_TAG events, want %d", c, len(evs))
	}
}

// eventlogPCRs reads the "pcrs:" section of tpm2_eventlog's YAML: per
// bank, the value of PCR 13.
func eventlogPCRs(out string) map[string][]byte {
	m := map[string][]byte{}
	i := strings.Index(out, "pcrs:")
	if i < 0 {
		return m
	}
	bank := ""
	re := regexp.MustCompile(`^\s*13\s*:\s*0x([0-9A-Fa-f]+)`)
	for _, line := range strings.Split(out[i:], "\n")[1:] {
		s := strings.TrimSpace(line)
		if strings.HasSuffix(s, ":") && !strings.HasPrefix(s, "1") {
			bank = strings.TrimSuffix(s, ":")
			continue
		}
		if mm := re.FindStringSubmatch(line); mm != nil {
			m[bank], _ = hex.DecodeString(mm[1])
		}
	}
	return m
}

// TestHungTPM freezes swtpm mid-boot: Record must give up after the
// deadline instead of hanging /init, and refuse everything afterwards.
func TestHungTPM(t *testing.T) {
	sw := swtpm.Start(t, swtpm.Config{})
	tpm := sw.Open()
	defer tpm.Close()
	r, err := measure.NewRecorder(tpmdev.WithDeadline(tpm, 300*time.Millisecond), 13)
	if err != nil {
		t.Fatal(err)
	}
	sw.Pause()
	defer sw.Resume()
	start := time.Now()
	err = r.Record(measure.PolicyEvent([]byte("p")))
	if !errors.Is(err, tpmdev.ErrTimeout) {
		t.Fatalf("Record on a hung TPM: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Record took %v on a hung TPM", d)
	}
	if err := r.Record(measure.SeparatorEvent()); err == nil {
		t.Error("Record after a timeout succeeded")
	}
}
