package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/attest"
	"github.com/mcinit/mcinit/e2e/fixture"
	"github.com/mcinit/mcinit/e2e/harness"
	"github.com/mcinit/mcinit/measure"
)

// The guest's mcinit CLI, on the root disk the fixture builds.
const guestMCInit = "/usr/bin/mcinit"

// TestAttestProfilesAndSealing boots one device (DevSerial, one TPM state)
// three times: production, development, production again.
//   - Each boot's quote, made inside the guest by `mcinit attest`, is
//     classified correctly by `mcinit verify` on the host with the AK
//     enrolled from the first boot; a wrong nonce or the other profile is
//     rejected; tpm2_checkquote accepts it.
//   - The quoted PCR equals `mcinit predict` for that policy, board,
//     identity and profile (tpm2_checkquote checks the predicted values
//     against the signed quote digest).
//   - A secret sealed with tpm2-tools to the predicted production value
//     (on the host, against the device's TPM state, between boots) does not
//     unseal in the development boot and unseals in the production boot.
func TestAttestProfilesAndSealing(t *testing.T) {
	e := env(t, "amd64")
	ctx := context.Background()
	requireTools(t, "tpm2_checkquote", "tpm2_createprimary", "swtpm")
	initrd, err := e.PolicyVariant(ctx, "attest", e.DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	pol := filepath.Join(e.Dir, "attest.toml")
	state := t.TempDir() // the device's TPM, kept across its boots
	work := t.TempDir()

	// 1. Production boot: quote, and the AK for enrollment.
	n1 := randomNonce(t)
	r := bootDevice(t, e, "attest-production", initrd, state, "",
		"exec="+guestMCInit+" attest -nonce "+n1+" -out /run/q",
		"exec="+guestMCInit+" attest -ak-pub-out /run/q/enrolled-ak.pem",
		"dump-dir=/run/q")
	wantReport(t, r, map[string]string{"profile": "production", "action.0.exec.rc": "0", "action.1.exec.rc": "0"})
	identity, ok := r.Value("file.identity")
	if !ok || !strings.Contains(identity, fixture.DevSerial) {
		t.Fatalf("identity %q from /run/mcinit/identity does not name the unit", identity)
	}
	q1 := evidence(t, r, 2, filepath.Join(work, "production"))
	ak := filepath.Join(work, "enrolled-ak.pem")
	if err := os.Rename(filepath.Join(q1, "enrolled-ak.pem"), ak); err != nil {
		t.Fatal(err)
	}
	prodPred := checkQuote(t, e, q1, n1, ak, pol, identity, "production")

	// Wrong nonce and wrong profile are rejected.
	if v, err := verify(e, q1, randomNonce(t), ak, pol, "production"); err == nil || !failed(v, "nonce") {
		t.Errorf("verify accepted a wrong nonce: %v %+v", err, v)
	}
	if v, err := verify(e, q1, n1, ak, pol, "development"); err == nil || !failed(v, "profile-required") {
		t.Errorf("verify -require-profile development accepted a production quote: %v", err)
	}

	// 2. Seal to the predicted production value, on this device's TPM.
	secret := "prod-secret-" + randomNonce(t)[:16]
	pcr, _ := hex.DecodeString(prodPred.Values["sha256"])
	pub, priv, err := fixture.SealToPCR(ctx, state, prodPred.PCR, pcr, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	unsealActs := []string{
		"write-file=/run/seal/seal.pub:" + b64(pub),
		"write-file=/run/seal/seal.priv:" + b64(priv),
		"exec=" + guestMCInit + " unseal -pub /run/seal/seal.pub -priv /run/seal/seal.priv -pcr " + strconv.Itoa(prodPred.PCR) +
			" -o /run/seal/secret",
		"dump-dir=/run/seal",
	}

	// 3. Development boot of the same device: no secret, a development quote.
	n2 := randomNonce(t)
	r = bootDevice(t, e, "attest-development", initrd, state, "mcinit.profile=development",
		slices.Concat(unsealActs, []string{
			"exec=" + guestMCInit + " attest -nonce " + n2 + " -out /run/q",
			"dump-dir=/run/q"})...)
	wantReport(t, r, map[string]string{"profile": "development", "action.0.write-file": "ok", "action.1.write-file": "ok",
		"action.3.dump-dir": "seal.priv,seal.pub", "action.4.exec.rc": "0"})
	out, _ := r.Value("action.2.exec.out")
	if rc, _ := r.Value("action.2.exec.rc"); rc == "0" || strings.Contains(out, secret) {
		t.Errorf("the development boot unsealed the production secret: exit %s: %q", rc, out)
	} else if !strings.Contains(out, "TPM_RC_POLICY_FAIL") {
		t.Errorf("unseal in development failed for another reason than the PCR policy: %q", out)
	} else {
		t.Logf("development boot: unseal exit %s: %s", rc, lastLine(out))
	}
	q2 := evidence(t, r, 5, filepath.Join(work, "development"))
	checkQuote(t, e, q2, n2, ak, pol, identity, "development")
	if _, err := verify(e, q2, n2, ak, pol, "production"); err == nil {
		t.Error("verify -require-profile production accepted a development quote")
	}

	// 4. Production again: the secret unseals.
	r = bootDevice(t, e, "attest-production-unseal", initrd, state, "", unsealActs...)
	wantReport(t, r, map[string]string{"profile": "production", "action.2.exec.rc": "0",
		"action.3.dump-dir.secret": secret})
}

// TestAttestRollback: with the floor index provisioned on the device's TPM
// (on the host, before the first boot), a production boot of policy
// version 2 raises the floor to 2, a development boot of version 3 leaves
// it, and an image with a validly signed policy version 1 is then refused.
// It also counts the TPM commands of the production boots and the
// refused one from swtpm's log.
func TestAttestRollback(t *testing.T) {
	e := env(t, "amd64")
	ctx := context.Background()
	requireTools(t, "swtpm")
	const index = "0x01504d43"
	state := t.TempDir()
	if _, err := e.TPMCommand(ctx, state, "rollback", "provision", "-index", index); err != nil {
		t.Fatal(err)
	}
	p := e.DefaultPolicy()
	p.RollbackNV = index
	p.Version = 2
	v2, err := e.PolicyVariant(ctx, "rollback-v2", p)
	if err != nil {
		t.Fatal(err)
	}
	p.Version = 1
	v1, err := e.PolicyVariant(ctx, "rollback-v1", p)
	if err != nil {
		t.Fatal(err)
	}

	m := deviceMachine(t, e, "rollback-v2", v2, state, "")
	m.TPMLog = filepath.Join(t.TempDir(), "tpm-v2.log")
	r := boot(t, m)
	wantReport(t, r, map[string]string{"profile": "production", "file.policy-version": "2"})
	// The whole boot's TPM traffic (firmware, kernel and /init; testinit
	// runs no actions). Only /init extends PCR 13 and touches NV indices.
	n := tpmCommands(t, m.TPMLog)
	t.Logf("TPM commands of a production boot with a rollback floor (kernel + /init): %v", n)
	// /init reads the floor once (NV_Read: unset) and settles it once
	// (NV_Write, NV_WriteLock); the banks come from sysfs.
	if n["PCR_Extend[13]"] != 6 || n["NV_Read"] != 1 || n["NV_Write"] != 1 || n["NV_WriteLock"] != 1 || n["NV_ReadPublic"] != 0 {
		t.Errorf("want 6 PCR_Extend[13], 1 NV_Read, 1 NV_Write, 1 NV_WriteLock and no NV_ReadPublic (the floor was unset): %v", n)
	}

	// The same image again: the floor already holds the version, so /init
	// sends the events + 2 commands (NV_Read, NV_WriteLock).
	m = deviceMachine(t, e, "rollback-v2-again", v2, state, "")
	m.TPMLog = filepath.Join(t.TempDir(), "tpm-v2-again.log")
	r = boot(t, m)
	wantReport(t, r, map[string]string{"profile": "production", "file.policy-version": "2"})
	n = tpmCommands(t, m.TPMLog)
	t.Logf("TPM commands of a production boot at the floor (kernel + /init): %v", n)
	if n["PCR_Extend[13]"] != 6 || n["NV_Read"] != 1 || n["NV_Write"] != 0 || n["NV_WriteLock"] != 1 || n["NV_ReadPublic"] != 0 {
		t.Errorf("want 6 PCR_Extend[13], 1 NV_Read, 1 NV_WriteLock and nothing else on NV: %v", n)
	}
	out, err := e.TPMCommand(ctx, state, "rollback", "show", "-index", index)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "floor 2" {
		t.Fatalf("after the version 2 boot: %q, want floor 2", out)
	}

	// A development boot of a newer policy does not raise the floor.
	p.Version = 3
	v3, err := e.PolicyVariant(ctx, "rollback-v3", p)
	if err != nil {
		t.Fatal(err)
	}
	r = bootDevice(t, e, "rollback-v3-development", v3, state, "mcinit.profile=development")
	wantReport(t, r, map[string]string{"profile": "development", "file.policy-version": "3"})
	if out, err = e.TPMCommand(ctx, state, "rollback", "show", "-index", index); err != nil || strings.TrimSpace(out) != "floor 2" {
		t.Fatalf("after the version 3 development boot: %q %v, want floor 2", out, err)
	}

	m = deviceMachine(t, e, "rollback-v1", v1, state, "")
	m.TPMLog = filepath.Join(t.TempDir(), "tpm-v1.log")
	r = boot(t, m)
	wantRefusal(t, r, "policy version 1 is below the rollback floor 2")
	// Refused after measuring policy, key set and board, then the failure;
	// the floor is read, never written.
	n = tpmCommands(t, m.TPMLog)
	t.Logf("TPM commands of the refused boot: %v", n)
	if n["PCR_Extend[13]"] != 4 || n["NV_Read"] != 1 || n["NV_Write"] != 0 || n["NV_WriteLock"] != 0 || n["NV_ReadPublic"] != 0 {
		t.Errorf("want 4 PCR_Extend[13] (policy, keyset, board, failure), 1 NV_Read, nothing else on NV: %v", n)
	}
}

// TestAttestNoTPM: the policy requires a TPM and the machine has none.
func TestAttestNoTPM(t *testing.T) {
	e := env(t, "amd64")
	m := e.Machine("no-tpm", e.Initrd, e.Disk, fixture.OtherSerial, "")
	m.TPM = false
	r := boot(t, m)
	wantRefusal(t, r, "policy requires a TPM and none works")
}

func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (scripts/deps.sh installs it): %v", tool, err)
		}
	}
}

// bootDevice boots the DevSerial unit on TPM state dir with the extra
// command line and testinit actions (each may contain spaces and commas).
func bootDevice(t *testing.T, e *fixture.Env, name, initrd, state, cmdline string, actions ...string) *harness.Result {
	t.Helper()
	return boot(t, deviceMachine(t, e, name, initrd, state, cmdline, actions...))
}

func deviceMachine(t *testing.T, e *fixture.Env, name, initrd, state, cmdline string, actions ...string) harness.Machine {
	t.Helper()
	for _, a := range actions {
		if strings.Contains(a, `"`) {
			t.Fatalf("action %q: no double quotes on the kernel command line", a)
		}
		cmdline += ` "mcinit_test.action=` + a + `"`
	}
	m := e.Machine(name, initrd, e.Disk, fixture.DevSerial, cmdline)
	m.TPMStateDir = state
	return m
}

// tpmCommands counts the TPM commands a boot sent (Machine.TPMLog).
func tpmCommands(t *testing.T, logFile string) map[string]int {
	t.Helper()
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatalf("swtpm command log: %v", err)
	}
	return harness.CountTPMCommands(harness.ParseTPMLog(b))
}

// evidence writes the files a dump-dir action (number i) reported into dir.
func evidence(t *testing.T, r *harness.Result, i int, dir string) string {
	t.Helper()
	key := "action." + strconv.Itoa(i) + ".dump-dir"
	list, ok := r.Value(key)
	if !ok || list == "" || strings.HasPrefix(list, "error") {
		t.Fatalf("%s = %q (log %s)", key, list, r.LogPath)
	}
	files := map[string][]byte{}
	for _, n := range strings.Split(list, ",") {
		v, ok := r.Value(key + "." + n)
		if !ok {
			t.Fatalf("%s.%s missing from the report", key, n)
		}
		files[n] = []byte(v)
	}
	if err := fixture.WriteDir(dir, files); err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkQuote verifies the quote in dir on the host (mcinit verify, with
// the profile required), predicts the PCR for profile and has
// tpm2_checkquote check both the PCR values the guest read and the
// predicted ones against the signed quote.
func checkQuote(t *testing.T, e *fixture.Env, dir, nonce, ak, pol, identity, profile string) *fixture.Prediction {
	t.Helper()
	// The default policy lets DevSerial boot development by its device ID
	// (allow_devices), not by board.
	return checkQuoteReason(t, e, dir, nonce, ak, pol, identity, profile, "dev-allowed-device")
}

// checkQuoteReason is checkQuote for a development boot allowed by
// devReason (dev-allowed-board, -device or -grant).
func checkQuoteReason(t *testing.T, e *fixture.Env, dir, nonce, ak, pol, identity, profile, devReason string) *fixture.Prediction {
	t.Helper()
	v, err := verify(e, dir, nonce, ak, pol, profile)
	if err != nil {
		t.Fatalf("verify %s quote: %v", profile, err)
	}
	// Direct kernel boot under SeaBIOS: no firmware chain, allowed here.
	if v.Profile != profile || v.PolicyVersion != e.DefaultPolicy().Version || !v.OK || v.Verdict != "unanchored" {
		t.Errorf("verdict profile %q version %d ok %v %q", v.Profile, v.PolicyVersion, v.OK, v.Verdict)
	}
	pcrsTxt, err := os.ReadFile(filepath.Join(dir, "pcrs.txt"))
	if err != nil {
		t.Fatal(err)
	}
	vals, err := attest.ParsePCRs(pcrsTxt)
	if err != nil {
		t.Fatal(err)
	}
	var banks []string
	for _, v := range vals {
		if b := measure.BankName(v.Bank); !slices.Contains(banks, b) {
			banks = append(banks, b)
		}
	}
	var extra []string
	if profile == "development" {
		extra = []string{"-reason", devReason}
	}
	pred, err := e.Predict(context.Background(), pol, identity, profile, strings.Join(banks, ","), extra...)
	if err != nil {
		t.Fatal(err)
	}
	// The quote covers the firmware's PCRs too (evidence version 2).
	var sel []string
	for _, v := range vals {
		b := measure.BankName(v.Bank)
		if v.Index != pred.PCR {
			continue
		}
		sel = append(sel, b+":"+strconv.Itoa(v.Index))
		if got := hex.EncodeToString(v.Value); pred.Values[b] != got {
			t.Errorf("%s:%d: guest read %s, mcinit predict %s", b, pred.PCR, got, pred.Values[b])
		}
	}
	// tpm2_checkquote checks the signature and the nonce. (tpm2-tools 5.4
	// refuses a values file (-f -l) for a multi-PCR selection, so the PCR
	// values are checked by mcinit verify's replay only.)
	cmd := exec.Command("tpm2_checkquote", "-u", filepath.Join(dir, "ak.pub"), "-m", filepath.Join(dir, "quote.bin"),
		"-s", filepath.Join(dir, "quote.sig"), "-g", "sha256", "-q", nonce)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("tpm2_checkquote: %v\n%s", err, out)
	}
	// The guest's event log replays in tpm2-tools to the predicted values.
	out, err := exec.Command("tpm2_eventlog", filepath.Join(dir, "eventlog.bin")).CombinedOutput()
	if err != nil {
		t.Fatalf("tpm2_eventlog: %v\n%s", err, out)
	}
	replayed := eventlogPCRs(string(out), pred.PCR)
	for _, b := range banks {
		if replayed[b] != pred.Values[b] {
			t.Errorf("tpm2_eventlog replays %s:%d to %q, predicted %s", b, pred.PCR, replayed[b], pred.Values[b])
		}
	}
	t.Logf("%s quote verified; %s predicted, quoted and replayed by tpm2_eventlog: %s", profile, strings.Join(sel, "+"), strings.TrimSpace(string(pcrsTxt)))
	return pred
}

// verdict is the part of `mcinit verify`'s JSON the tests look at.
type verdict struct {
	Profile       string `json:"profile"`
	PolicyVersion uint64 `json:"policy_version"`
	Verdict       string `json:"verdict"`
	OK            bool   `json:"ok"`
	Checks        []struct {
		Name   string `json:"name"`
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
	} `json:"checks"`
}

// verify runs `mcinit verify` with the policy's signatures checked.
func verify(e *fixture.Env, dir, nonce, ak, pol, profile string) (*verdict, error) {
	out, err := e.Run(context.Background(), "verify", "-quote-dir", dir, "-nonce", nonce, "-ak", ak,
		"-policy", pol, "-keys", e.KeysDir, "-allow-unanchored", "-require-profile", profile)
	v := &verdict{}
	if jerr := json.Unmarshal([]byte(out), v); jerr != nil && err == nil {
		return nil, jerr
	}
	return v, err
}

// failed reports whether the verdict has check name, failed.
func failed(v *verdict, name string) bool {
	if v == nil {
		return false
	}
	for _, c := range v.Checks {
		if c.Name == name {
			return !c.OK
		}
	}
	return false
}

func randomNonce(t *testing.T) string {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// lastLine is the last non-empty line of s (a command's error, after any
// noise its start printed).
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// eventlogPCRs reads the final "pcrs:" section of tpm2_eventlog's YAML:
// bank → value of pcr, lowercase hex.
func eventlogPCRs(out string, pcr int) map[string]string {
	m := map[string]string{}
	i := strings.LastIndex(out, "pcrs:")
	if i < 0 {
		return m
	}
	bank := ""
	for _, line := range strings.Split(out[i:], "\n")[1:] {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case !ok:
		case v == "":
			bank = k
		case k == strconv.Itoa(pcr):
			m[bank] = strings.ToLower(strings.TrimPrefix(v, "0x"))
		}
	}
	return m
}
