package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/e2e/fixture"
	"github.com/mcinit/mcinit/initramfs"
)

// The default boot: no flag, a verified policy, a dm-verity root.
func TestX86Production(t *testing.T) {
	t.Parallel()
	e := env(t, "amd64")
	r := boot(t, e.Machine("x86-production", e.Initrd, e.Disk, fixture.OtherSerial, ""))
	wantReport(t, r, map[string]string{
		"profile":          "production",
		"root.fstype":      "erofs",
		"root.mode":        "ro",
		"root_writable":    "no",
		"modules_disabled": "1",
		"file.board":       "qemu-x86_64",
	})
	if src, _ := r.Value("root.source"); !strings.HasPrefix(src, "/dev/mapper/") && !strings.HasPrefix(src, "/dev/dm-") {
		t.Errorf("root source %q is not a device-mapper device", src)
	}
	if !r.Has("mcinit: board: qemu-x86_64") {
		t.Error("no board line")
	}
}

// Development requested by a unit the policy lists.
func TestX86DevelopmentAllowed(t *testing.T) {
	t.Parallel()
	e := env(t, "amd64")
	r := boot(t, e.Machine("x86-dev-allowed", e.Initrd, e.Disk, fixture.DevSerial,
		"mcinit.profile=development mcinit_test.actions=write-marker"))
	wantReport(t, r, map[string]string{
		"profile":               "development",
		"root.fstype":           "overlay",
		"root_writable":         "yes",
		"modules_disabled":      "0",
		"action.0.write-marker": "ok",
	})
}

// Development requested by a unit the policy does not list: production,
// with a visible warning, and the denial is measured.
func TestX86DevelopmentDenied(t *testing.T) {
	t.Parallel()
	e := env(t, "amd64")
	r := boot(t, e.Machine("x86-dev-denied", e.Initrd, e.Disk, fixture.OtherSerial, "mcinit.profile=development"))
	wantReport(t, r, map[string]string{
		"profile":       "production",
		"root_writable": "no",
	})
	if !r.Has("reason dev-denied") {
		t.Error("the denial is not visible on the console")
	}
}

// A policy changed after signing: refused, never development.
func TestX86TamperedPolicy(t *testing.T) {
	t.Parallel()
	e := env(t, "amd64")
	raw, err := e.ReadRecord(initramfs.PolicyFile)
	if err != nil {
		t.Fatal(err)
	}
	tampered := []byte(strings.Replace(string(raw), "version = 1", "version = 2", 1))
	initrd, err := e.Variant("tampered", map[string][]byte{initramfs.PolicyFile: tampered})
	if err != nil {
		t.Fatal(err)
	}
	r := boot(t, e.Machine("x86-tampered", initrd, e.Disk, fixture.DevSerial, "mcinit.profile=development"))
	wantRefusal(t, r, "policy: ")
}

// No policy at all.
func TestX86MissingPolicy(t *testing.T) {
	t.Parallel()
	e := env(t, "amd64")
	initrd, err := e.Variant("nopolicy", map[string][]byte{initramfs.PolicyFile: nil, initramfs.SigFile: nil})
	if err != nil {
		t.Fatal(err)
	}
	r := boot(t, e.Machine("x86-nopolicy", initrd, e.Disk, fixture.OtherSerial, ""))
	wantRefusal(t, r, "policy: ")
}

// A valid policy that covers other boards only.
func TestX86BoardNotCovered(t *testing.T) {
	t.Parallel()
	e := env(t, "amd64")
	p := e.DefaultPolicy()
	p.Boards = []string{"intel-nuc"}
	initrd, err := e.PolicyVariant(context.Background(), "other-board", p)
	if err != nil {
		t.Fatal(err)
	}
	r := boot(t, e.Machine("x86-board-not-covered", initrd, e.Disk, fixture.OtherSerial, ""))
	// The exact cause, from the decision: a refusal for any other reason
	// (policy, TPM, disk) must not pass this test.
	wantRefusal(t, r, fmt.Sprintf("board qemu-x86_64 is not covered by policy version %d", p.Version))
	if line, _ := r.First("mcinit: refusing to boot: "); !strings.HasSuffix(line.Text, fmt.Sprintf("policy version %d", p.Version)) {
		t.Errorf("refusal %q: more than the cause", line.Text)
	}
}

// No disk: a clear refusal after the bounded wait, no hang.
func TestX86MissingDisk(t *testing.T) {
	t.Parallel()
	e := env(t, "amd64")
	r := boot(t, e.Machine("x86-nodisk", e.Initrd, "", fixture.OtherSerial, ""))
	wantRefusal(t, r, "no accepted root image found")
}

// The kernel drops /dev/kmsg lines beyond 10 per open file in 5 s while
// the write succeeds; the command line (untrusted) can add a warning per
// word. A refusal after a flood of warnings must still reach the console,
// once, and no mcinit line may be dropped.
func TestX86RefusalAfterWarningFlood(t *testing.T) {
	t.Parallel()
	e := env(t, "amd64")
	var flood []string
	for i := 0; i < 16; i++ {
		flood = append(flood, fmt.Sprintf("mcinit.flood%d=1", i))
	}
	r := boot(t, e.Machine("x86-warning-flood", e.Initrd, "", fixture.OtherSerial, strings.Join(flood, " ")))
	wantRefusal(t, r, "no accepted root image found")
	if n := strings.Count(string(r.Serial), "mcinit: refusing to boot: "); n != 1 {
		t.Errorf("%d refusal lines, want exactly 1", n)
	}
	for i := 0; i < 16; i++ {
		if !r.Has(fmt.Sprintf(`unknown parameter "mcinit.flood%d" ignored`, i)) {
			t.Errorf("warning for mcinit.flood%d missing from the console", i)
		}
	}
	if r.Has("output lines suppressed") {
		t.Error("the kernel suppressed lines of /init")
	}
}

// The command line cannot choose the root in production.
func TestX86CmdlineRootIgnored(t *testing.T) {
	t.Parallel()
	e := env(t, "amd64")
	r := boot(t, e.Machine("x86-cmdline-root", e.Initrd, e.Disk, fixture.OtherSerial,
		"root=/dev/vda1 roothash=0000000000000000000000000000000000000000000000000000000000000000"))
	wantReport(t, r, map[string]string{"profile": "production", "root.mode": "ro"})
	if !r.Has("ignoring root=/dev/vda1") || !r.Has("ignoring roothash=") {
		t.Error("the ignored root= / roothash= are not reported on the console")
	}
}

// A development grant: the fleet policy lists no device, but one unit holds
// a grant signed with the fleet key (made by `mcinit grant`). That unit boots
// development; another unit with the same image cannot use it.
func TestX86DevelopmentGrant(t *testing.T) {
	t.Parallel()
	e := env(t, "amd64")
	ctx := context.Background()
	grant := filepath.Join(t.TempDir(), "unit-0001.toml")
	if _, err := e.Run(ctx, "grant", "-board", e.Board, "-device", fixture.DevSerial, "-max-version", "1", "-key", e.PrivKey, "-out", grant); err != nil {
		t.Fatal(err)
	}
	g, err := os.ReadFile(grant)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := os.ReadFile(grant + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	p := e.DefaultPolicy()
	p.DevDevices = nil
	p.DevGrants = true
	initrd, err := e.PolicyVariantWith(ctx, "grant", p, map[string][]byte{
		initramfs.GrantsDir + "/unit-0001.toml":     g,
		initramfs.GrantsDir + "/unit-0001.toml.sig": sig,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := boot(t, e.Machine("x86-grant", initrd, e.Disk, fixture.DevSerial, "mcinit.profile=development"))
	wantReport(t, r, map[string]string{"profile": "development", "root_writable": "yes"})
	if !r.Has("reason dev-allowed-grant") {
		t.Error("the decision does not name the grant")
	}
	r = boot(t, e.Machine("x86-grant-other-unit", initrd, e.Disk, fixture.OtherSerial, "mcinit.profile=development"))
	wantReport(t, r, map[string]string{"profile": "production", "root_writable": "no"})
	if !r.Has("reason dev-denied") {
		t.Error("another unit was not denied visibly")
	}
}

// mcinit.shell never opens a shell in production: the boot goes on, with
// a warning naming the ignored flag.
func TestX86ShellIgnoredInProduction(t *testing.T) {
	t.Parallel()
	e := env(t, "amd64")
	r := boot(t, e.Machine("x86-shell-production", e.Initrd, e.Disk, fixture.OtherSerial, "mcinit.shell"))
	wantReport(t, r, map[string]string{"profile": "production", "modules_disabled": "1"})
	if !r.Has("mcinit.shell ignored") {
		t.Error("the ignored mcinit.shell is not reported")
	}
	if r.Has("rescue shell") {
		t.Error("a rescue shell was offered in production")
	}
}
