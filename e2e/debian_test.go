package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcinit/mcinit/e2e/fixture"
)

// The Debian root the test boots: debootstrap's minbase of bookworm with
// these packages, cached as a tar (owners and xattrs kept) under
// $MCINIT_CACHE/debian, keyed by suite, arch, variant and package list.
const (
	debianSuite    = "bookworm"
	debianMirror   = "http://deb.debian.org/debian"
	debianVariant  = "minbase"
	debianPackages = "systemd,systemd-sysv,kmod"
)

// debianTar returns the cached root archive for arch, running debootstrap
// (about two minutes, needs root and the Debian mirror) when it is absent.
func debianTar(t *testing.T, arch string) string {
	t.Helper()
	key := sha256.Sum256([]byte(strings.Join([]string{debianSuite, arch, debianVariant, debianPackages}, " ")))
	cache := os.Getenv("MCINIT_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "mcinit")
	}
	tarPath := filepath.Join(cache, "debian", fmt.Sprintf("%s-%s-%s.tar", debianSuite, arch, hex.EncodeToString(key[:])[:12]))
	if _, err := os.Stat(tarPath); err == nil {
		return tarPath
	}
	requireTools(t, "debootstrap", "tar")
	if os.Geteuid() != 0 {
		t.Fatal("debootstrap needs root")
	}
	dir := t.TempDir()
	start := time.Now()
	cmd := exec.Command("debootstrap", "--arch="+arch, "--variant="+debianVariant, "--include="+debianPackages,
		debianSuite, dir, debianMirror)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("debootstrap: %v\n%s", err, lastLines(string(out), 20))
	}
	if err := os.MkdirAll(filepath.Dir(tarPath), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := tarPath + ".tmp"
	if out, err := exec.Command("tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-C", dir, "-cf", tmp, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, tarPath); err != nil {
		t.Fatal(err)
	}
	t.Logf("debootstrap %s %s (%s): %v, cached in %s", debianSuite, arch, debianPackages, time.Since(start).Round(time.Second), tarPath)
	return tarPath
}

// debianReportScript runs as a systemd service once the system is up: it
// reports on the console what the host checks, then powers off. Each line
// starts with "DEBIAN-REPORT "; files are base64 in 64-character chunks so
// a kernel message breaking into one line is caught by the digest.
const debianReportScript = `#!/bin/sh
r() { echo "DEBIAN-REPORT $*" >/dev/console; }
state=$(systemctl is-system-running --wait 2>&1)
r "state=$state"
r "multi-user=$(systemctl is-active multi-user.target)"
r "failed=$(systemctl --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' ')"
for u in $(systemctl --failed --plain --no-legend | awk '{print $1}'); do
	journalctl -b -u "$u" --no-pager -o cat 2>&1 | tail -n 5 | while read -r l; do r "failed-log $u: $l"; done
done
r "root=$(findmnt -n -o SOURCE,FSTYPE,OPTIONS /)"
if touch /.mcinit-write-probe 2>/dev/null; then rm -f /.mcinit-write-probe; r "root-writable=yes"; else r "root-writable=no"; fi
r "shadow=$(stat -c %u:%g:%a /etc/shadow)"
r "chkpwd=$(stat -c %u:%g:%a /usr/sbin/unix_chkpwd)"
if out=$(modprobe crc7 2>&1); then r "modprobe=ok $(grep -c '^crc7 ' /proc/modules)"; else r "modprobe=fail $out"; fi
r "machine-id=$(cat /etc/machine-id)"
r "tmp=$(findmnt -n -o FSTYPE /tmp) var-tmp=$(findmnt -n -o FSTYPE /var/tmp)"
nonce=$(sed -n 's/.*mcinit_test.nonce=\([0-9a-f]*\).*/\1/p' /proc/cmdline)
mkdir -p /run/q
if out=$(/usr/bin/mcinit attest -nonce "$nonce" -out /run/q 2>&1 && /usr/bin/mcinit attest -ak-pub-out /run/q/enrolled-ak.pem 2>&1); then r "attest=ok"; else r "attest=fail $out"; fi
cp /run/mcinit/identity /run/q/identity
for f in /run/q/*; do
	n=$(basename "$f")
	r "file $n sha256 $(sha256sum "$f" | cut -d' ' -f1)"
	base64 -w 64 "$f" | while read -r l; do r "data $n $l"; done
done
r "end"
systemctl poweroff
`

const debianReportUnit = `[Unit]
Description=mcinit e2e report
After=multi-user.target
[Service]
# simple, not oneshot: the script waits for the boot to finish
# (is-system-running --wait), which a still-starting oneshot job would hold up.
Type=simple
ExecStart=/usr/local/sbin/mcinit-report
StandardOutput=journal+console
[Install]
WantedBy=multi-user.target
`

// debianReport is what the guest's report said.
type debianReport struct {
	values map[string]string
	files  map[string][]byte
}

func parseDebianReport(t *testing.T, serial []byte) *debianReport {
	t.Helper()
	rep := &debianReport{values: map[string]string{}, files: map[string][]byte{}}
	sums := map[string]string{}
	chunks := map[string]*strings.Builder{}
	sc := bufio.NewScanner(strings.NewReader(string(serial)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, "DEBIAN-REPORT ")
		if i < 0 {
			continue
		}
		line = strings.TrimRight(line[i+len("DEBIAN-REPORT "):], "\r")
		f := strings.Fields(line)
		switch {
		case len(f) == 4 && f[0] == "file" && f[2] == "sha256":
			sums[f[1]] = f[3]
			chunks[f[1]] = &strings.Builder{}
		case len(f) == 3 && f[0] == "data" && chunks[f[1]] != nil:
			chunks[f[1]].WriteString(f[2])
		case line == "end":
			rep.values["end"] = "yes"
		default:
			k, v, _ := strings.Cut(line, "=")
			if strings.HasPrefix(k, "failed-log ") {
				rep.values["failed-log"] += v + "\n"
				continue
			}
			rep.values[k] = strings.TrimSpace(v)
		}
	}
	for n, sum := range sums {
		b, err := base64.StdEncoding.DecodeString(chunks[n].String())
		got := sha256.Sum256(b)
		if err != nil || hex.EncodeToString(got[:]) != sum {
			t.Fatalf("report file %s came through the console damaged (%v)", n, err)
		}
		rep.files[n] = b
	}
	return rep
}

// debianDisk builds the Debian root disk: the cached debootstrap tree, the
// guest CLI, the report service, crc7 as a loadable module of the test
// kernel, and `mcinit image -ro-helpers` for the read-only root.
func debianDisk(t *testing.T, e *fixture.Env) (disk, rootHash string, dataBlocks uint64) {
	t.Helper()
	ctx := context.Background()
	archive := debianTar(t, e.Arch)
	tree := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-C", tree, "-xf", archive).CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v\n%s", err, out)
	}
	kver := filepath.Base(e.ModulesDir)
	ko := filepath.Join(e.ModulesDir, "kernel", "lib", fixture.DevModule+".ko")
	cli := filepath.Join(e.Dir, "mcinit-"+e.Arch)
	files := map[string]string{
		"/usr/bin/mcinit": cli,
		"/lib/modules/" + kver + "/kernel/lib/" + fixture.DevModule + ".ko": ko,
	}
	for dst, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(tree, dst)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("depmod", "-b", tree, kver).CombinedOutput(); err != nil {
		t.Fatalf("depmod: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(tree, "usr/local/sbin/mcinit-report"), []byte(debianReportScript), 0o755)
	os.WriteFile(filepath.Join(tree, "etc/systemd/system/mcinit-report.service"), []byte(debianReportUnit), 0o644)
	want := filepath.Join(tree, "etc/systemd/system/multi-user.target.wants")
	os.MkdirAll(want, 0o755)
	if err := os.Symlink("/etc/systemd/system/mcinit-report.service", filepath.Join(want, "mcinit-report.service")); err != nil {
		t.Fatal(err)
	}
	// No getty: the serial console is the report's. systemd's getty
	// generator would add serial-getty@ttyS0 for console=ttyS0, and on this
	// minbase root (no udev) its dev-ttyS0.device never appears: every boot
	// waited the 90 s job timeout for it.
	if err := os.Symlink("/dev/null", filepath.Join(tree, "etc/systemd/system/serial-getty@ttyS0.service")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(tree, "etc/hostname"), []byte("mcinit-debian\n"), 0o644)

	disk = filepath.Join(e.Dir, "debian-"+e.Arch+".img")
	start := time.Now()
	out, err := e.Run(ctx, "image", "-arch", e.Arch, "-verity", "-root-dir", tree, "-ro-helpers", "-out", disk, "-json")
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		RootHash   string
		DataBlocks uint64
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.RootHash == "" || res.DataBlocks == 0 {
		t.Fatalf("mcinit image -json: %v %q", err, out)
	}
	st, _ := os.Stat(disk)
	t.Logf("Debian root disk: %d MiB, built in %v", st.Size()>>20, time.Since(start).Round(time.Second))
	return disk, res.RootHash, res.DataBlocks
}

// TestDebianSystemd boots a stock debootstrapped Debian bookworm with
// systemd through mcinit: production (dm-verity read-only root, systemd
// reaches multi-user.target with no failed units, module loading locked)
// and development (writable overlay root, modprobe works). In both the
// guest's quote verifies, its PCR equals `mcinit predict`, and its event
// log replays in tpm2_eventlog.
func TestDebianSystemd(t *testing.T) {
	e := env(t, "amd64")
	ctx := context.Background()
	requireTools(t, "tpm2_checkquote", "tpm2_eventlog", "swtpm", "depmod")
	disk, rootHash, dataBlocks := debianDisk(t, e)
	p := e.DefaultPolicy()
	p.RootHash, p.DataBlocks = rootHash, dataBlocks
	initrd, err := e.PolicyVariant(ctx, "debian", p)
	if err != nil {
		t.Fatal(err)
	}
	pol := filepath.Join(e.Dir, "debian.toml")
	state := t.TempDir()
	work := t.TempDir()

	run := func(name, cmdline string) (*debianReport, string) {
		nonce := randomNonce(t)
		// no_timer_check: under a loaded host TCG can miss the kernel's IO-APIC
		// timer check and panic before /init.
		m := e.Machine(name, initrd, disk, fixture.DevSerial, strings.TrimSpace(cmdline+" no_timer_check mcinit_test.nonce="+nonce))
		m.TPMStateDir = state
		m.MemoryMB = 1024
		m.Timeout = 15 * time.Minute
		r := boot(t, m)
		rep := parseDebianReport(t, r.Serial)
		if rep.values["end"] != "yes" {
			t.Fatalf("%s: no complete report from the Debian guest (outcome %s); log %s", name, r.Outcome, r.LogPath)
		}
		t.Logf("%s: %s in %v under TCG; report %v", name, r.Outcome, r.Elapsed.Round(time.Second), rep.values)
		return rep, nonce
	}
	check := func(rep *debianReport, want map[string]string) {
		t.Helper()
		for k, v := range want {
			if rep.values[k] != v {
				t.Errorf("%s = %q, want %q", k, rep.values[k], v)
			}
		}
		if rep.values["failed"] != "" {
			t.Errorf("failed units: %s\n%s", rep.values["failed"], rep.values["failed-log"])
		}
	}

	// Production.
	rep, nonce := run("debian-production", "")
	check(rep, map[string]string{"state": "running", "multi-user": "active", "root-writable": "no",
		"shadow": "0:42:640", "chkpwd": "0:42:2755", "attest": "ok", "tmp": "tmpfs var-tmp=tmpfs"})
	if root := strings.Fields(rep.values["root"]); len(root) != 3 || !strings.HasPrefix(root[0], "/dev/mapper/") ||
		root[1] != "erofs" || !strings.HasPrefix(root[2], "ro,") {
		t.Errorf("production root %q, want the dm-verity device, erofs, read-only", rep.values["root"])
	}
	if !strings.HasPrefix(rep.values["modprobe"], "fail") {
		t.Errorf("production loaded a module: %s", rep.values["modprobe"])
	}
	dir := filepath.Join(work, "production")
	if err := fixture.WriteDir(dir, rep.files); err != nil {
		t.Fatal(err)
	}
	ak := filepath.Join(work, "enrolled-ak.pem")
	if err := os.Rename(filepath.Join(dir, "enrolled-ak.pem"), ak); err != nil {
		t.Fatal(err)
	}
	identity := strings.TrimSpace(string(rep.files["identity"]))
	checkQuote(t, e, dir, nonce, ak, pol, identity, "production")

	// Development on the same device.
	rep, nonce = run("debian-development", devCmdline)
	check(rep, map[string]string{"state": "running", "multi-user": "active", "root-writable": "yes",
		"modprobe": "ok 1", "attest": "ok"})
	if !strings.Contains(rep.values["root"], "overlay") {
		t.Errorf("development root %q, want the overlay", rep.values["root"])
	}
	dir = filepath.Join(work, "development")
	if err := fixture.WriteDir(dir, rep.files); err != nil {
		t.Fatal(err)
	}
	checkQuote(t, e, dir, nonce, ak, pol, identity, "development")
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
