package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/e2e/fixture"
	"github.com/mcinit/mcinit/e2e/harness"
	"github.com/mcinit/mcinit/grantpart"
	"github.com/mcinit/mcinit/rootfs"
	"github.com/mcinit/mcinit/signing"
)

// grantsDisk copies the fixture's root disk and adds an empty 1 MiB
// partition named mcinit-grants (number 3, /dev/vda3 in the guest) with
// sgdisk, as an image maker adds it to an existing disk (mcinit image
// -grants makes it in a new one). The root and hash partitions keep their
// bytes: the policy's root hash still matches.
func grantsDisk(t *testing.T, e *fixture.Env) string {
	t.Helper()
	requireTools(t, "sgdisk")
	disk := filepath.Join(t.TempDir(), "grants-disk.img")
	src, err := os.Open(e.Disk)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(disk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	st, err := dst.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.Truncate(st.Size() + 2<<20); err != nil {
		t.Fatal(err)
	}
	dst.Close()
	for _, args := range [][]string{{"-e", disk},
		{"-n", "3:0:+1M", "-t", "3:" + grantpart.TypeUUID, "-c", "3:" + grantpart.Label, disk}} {
		if out, err := exec.Command("sgdisk", args...).CombinedOutput(); err != nil {
			t.Fatalf("sgdisk %q: %v\n%s", args, err, out)
		}
	}
	return disk
}

// partDigests hashes each partition of a disk image, by number.
func partDigests(t *testing.T, disk string) map[int]string {
	t.Helper()
	b, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := rootfs.ParseGPT(b, 512)
	if err != nil {
		t.Fatal(err)
	}
	m := map[int]string{}
	for _, p := range parts {
		s := sha256.Sum256(b[p.FirstLBA*512 : (p.LastLBA+1)*512])
		m[p.Number] = hex.EncodeToString(s[:])
	}
	return m
}

func fileDigest(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// wantLine checks that mcinit printed exactly line (prefix: a line that
// starts with it), once.
func wantLine(t *testing.T, r *harness.Result, line string, prefix bool) {
	t.Helper()
	n := 0
	for _, l := range r.Mcinit {
		if l.Text == line || prefix && strings.HasPrefix(l.Text, line) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d console lines %q (want 1); log %s", n, line, r.LogPath)
	}
}

// TestX86GrantsPartition unlocks one unit without rebuilding anything: the
// policy lets no device boot development but honours grants. With an empty
// grants partition the unit's development request boots production; after
// `mcinit grant write` puts a grant on its disk (the same initramfs, the
// same root and hash partitions, byte for byte) it boots development, and
// the verified quote names the grant and where it was read. A tampered
// grant and a grant for another unit on the partition boot production,
// each with one console line naming it and why.
func TestX86GrantsPartition(t *testing.T) {
	e := env(t, "amd64")
	ctx := context.Background()
	requireTools(t, "tpm2_checkquote", "tpm2_eventlog", "swtpm")
	p := e.DefaultPolicy()
	p.DevDevices = nil
	p.DevGrants = true
	initrd, err := e.PolicyVariant(ctx, "grants-partition", p)
	if err != nil {
		t.Fatal(err)
	}
	pol := filepath.Join(e.Dir, "grants-partition.toml")
	disk := grantsDisk(t, e)
	dir := t.TempDir()
	unit := filepath.Join(dir, "unit.toml")
	other := filepath.Join(dir, "other.toml")
	if _, err := e.Run(ctx, "grant", "-board", e.Board, "-device", fixture.DevSerial, "-max-version", "1", "-key", e.PrivKey, "-out", unit); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Run(ctx, "grant", "-board", e.Board, "-device", fixture.OtherSerial, "-max-version", "1", "-key", e.PrivKey, "-out", other); err != nil {
		t.Fatal(err)
	}
	machine := func(name string, actions ...string) harness.Machine {
		line := devCmdline
		for _, a := range actions {
			line += ` "mcinit_test.action=` + a + `"`
		}
		m := e.Machine(name, initrd, disk, fixture.DevSerial, line)
		m.DiskSnapshot = false
		return m
	}

	// 1. An empty partition: development denied, production.
	r := boot(t, machine("grants-empty"))
	wantReport(t, r, map[string]string{"profile": "production", "root_writable": "no", "modules_disabled": "1"})
	wantLine(t, r, "mcinit: grants partition /dev/vda3: blank (no grants written)", false)
	wantLine(t, r, `mcinit: profile: production (requested development, reason dev-denied)`, false)

	// 2. Write the unit's grant; nothing else changes.
	initrdSum, before := fileDigest(t, initrd), partDigests(t, disk)
	if _, err := e.Run(ctx, "grant", "write", "-disk", disk, "-keys", e.KeysDir, unit); err != nil {
		t.Fatal(err)
	}
	after := partDigests(t, disk)
	if fileDigest(t, initrd) != initrdSum || after[1] != before[1] || after[2] != before[2] || after[3] == before[3] {
		t.Fatalf("grant write: initramfs %v, root %v, hash %v unchanged; grants partition changed %v",
			fileDigest(t, initrd) == initrdSum, after[1] == before[1], after[2] == before[2], after[3] != before[3])
	}
	nonce := randomNonce(t)
	r = boot(t, machine("grants-unlocked",
		"exec="+guestMCInit+" attest -nonce "+nonce+" -out /run/q",
		"exec="+guestMCInit+" attest -ak-pub-out /run/q/enrolled-ak.pem",
		"dump-dir=/run/q"))
	wantReport(t, r, map[string]string{"profile": "development", "root_writable": "yes", "action.0.exec.rc": "0", "action.1.exec.rc": "0"})
	doc, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(doc)
	sumHex := hex.EncodeToString(sum[:])
	wantLine(t, r, fmt.Sprintf(`mcinit: grant partition /dev/vda3 "unit.toml": grant board=%s device=%q max_policy_version=1, verified`, e.Board, fixture.DevSerial), false)
	wantLine(t, r, `mcinit: development unlocked by grant partition /dev/vda3 "unit.toml" (sha256 `+sumHex[:16]+`)`, false)

	// The quote, verified on the host: development, by this grant, read
	// from the partition; the PCR equals mcinit predict's for the grant.
	q := evidence(t, r, 2, filepath.Join(dir, "quote"))
	ak := filepath.Join(dir, "ak.pem")
	if err := os.Rename(filepath.Join(q, "enrolled-ak.pem"), ak); err != nil {
		t.Fatal(err)
	}
	out, err := e.Run(ctx, "verify", "-quote-dir", q, "-nonce", nonce, "-ak", ak, "-policy", pol, "-keys", e.KeysDir,
		"-allow-unanchored", "-require-profile", "development")
	if err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	var v struct {
		Profile     string `json:"profile"`
		Reason      string `json:"reason"`
		GrantSHA256 string `json:"grant_sha256"`
		GrantSource string `json:"grant_source"`
		OK          bool   `json:"ok"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	if !v.OK || v.Profile != "development" || v.Reason != "dev-allowed-grant" || v.GrantSHA256 != sumHex || v.GrantSource != "partition" {
		t.Errorf("verdict %+v, want development by grant %s from the partition", v, sumHex)
	}
	identity, _ := r.Value("file.identity")
	pcrs, err := os.ReadFile(filepath.Join(q, "pcrs.txt"))
	if err != nil {
		t.Fatal(err)
	}
	_, vals, err := fixture.QuoteBanks(pcrs)
	if err != nil {
		t.Fatal(err)
	}
	pred, err := e.Predict(ctx, pol, identity, "development", "sha256", "-grant", unit, "-grant-source", "partition", "-reason", "dev-allowed-grant")
	if err != nil {
		t.Fatal(err)
	}
	if got := vals["sha256"]; got == "" || got != pred.Values["sha256"] {
		t.Errorf("sha256:13 quoted %q, mcinit predict -grant %s", got, pred.Values["sha256"])
	}

	// 3. A tampered grant (a later max_policy_version, the old signature).
	tampered := filepath.Join(dir, "tampered", "unit.toml")
	os.MkdirAll(filepath.Dir(tampered), 0o755)
	os.WriteFile(tampered, []byte(strings.Replace(string(doc), "max_policy_version = 1", "max_policy_version = 9", 1)), 0o644)
	sig, _ := os.ReadFile(unit + ".sig")
	os.WriteFile(tampered+".sig", sig, 0o644)
	if _, err := e.Run(ctx, "grant", "write", "-disk", disk, tampered); err != nil {
		t.Fatal(err)
	}
	ks, err := signing.LoadKeySetDir(e.KeysDir)
	if err != nil {
		t.Fatal(err)
	}
	keyID := ks.Keys()[0].ID
	r = boot(t, machine("grants-tampered"))
	wantReport(t, r, map[string]string{"profile": "production", "root_writable": "no"})
	wantLine(t, r, `mcinit: warning: grant ignored: partition /dev/vda3 "unit.toml": grant signature: bad signature from key `+keyID, true)
	wantLine(t, r, `mcinit: profile: production (requested development, reason dev-denied)`, false)

	// 4. A valid grant for another unit.
	if _, err := e.Run(ctx, "grant", "write", "-disk", disk, "-keys", e.KeysDir, other); err != nil {
		t.Fatal(err)
	}
	r = boot(t, machine("grants-other-unit"))
	wantReport(t, r, map[string]string{"profile": "production", "root_writable": "no"})
	wantLine(t, r, fmt.Sprintf(`mcinit: warning: grant ignored: partition /dev/vda3 "other.toml": it is for board %s device %q, this is board %s device %q`,
		e.Board, fixture.OtherSerial, e.Board, fixture.DevSerial), false)
	wantLine(t, r, `mcinit: profile: production (requested development, reason dev-denied)`, false)
}

// TestArm64GrantsPartition mirrors the unlock on aarch64 -M virt, where
// the identity comes from the device tree: the DT gains a serial-number,
// and a grant for it written to the grants partition boots development.
func TestArm64GrantsPartition(t *testing.T) {
	e := env(t, "arm64")
	ctx := context.Background()
	requireTools(t, "fdtput")
	const serial = "MCARM-0007"
	p := e.DefaultPolicy()
	p.DevDevices = nil
	p.DevGrants = true
	initrd, err := e.PolicyVariant(ctx, "grants-partition", p)
	if err != nil {
		t.Fatal(err)
	}
	disk := grantsDisk(t, e)
	unit := filepath.Join(t.TempDir(), "unit.toml")
	if _, err := e.Run(ctx, "grant", "-board", e.Board, "-device", serial, "-max-version", "1", "-key", e.PrivKey, "-out", unit); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Run(ctx, "grant", "write", "-disk", disk, "-keys", e.KeysDir, unit); err != nil {
		t.Fatal(err)
	}
	m := e.Machine("arm64-grants-unlocked", initrd, disk, "", devCmdline)
	dtb := filepath.Join(t.TempDir(), "virt.dtb")
	if err := harness.DumpDTB(ctx, m, dtb); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("fdtput", "-t", "s", dtb, "/", "serial-number", serial).CombinedOutput(); err != nil {
		t.Fatalf("fdtput: %v\n%s", err, out)
	}
	m.DTB = dtb
	r := boot(t, m)
	wantReport(t, r, map[string]string{"profile": "development", "root_writable": "yes"})
	wantLine(t, r, fmt.Sprintf(`mcinit: grant partition /dev/vda3 "unit.toml": grant board=%s device=%q max_policy_version=1, verified`, e.Board, serial), false)
	wantLine(t, r, `mcinit: profile: development (requested development, reason dev-allowed-grant)`, false)
}
