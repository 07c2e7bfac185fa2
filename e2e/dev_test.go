package e2e

import (
	"context"
	"encoding/binary"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mcinit/mcinit/e2e/fixture"
	"github.com/mcinit/mcinit/e2e/harness"
)

// The development disk (root + guest CLI + a module, an ext4 upper) is
// built once per run; each test writes to its own copy.
var (
	devDiskOnce sync.Once
	devDiskBase *fixture.DevDisk
	devDiskErr  error
)

func devDisk(t *testing.T, e *fixture.Env, name string) *fixture.DevDisk {
	t.Helper()
	devDiskOnce.Do(func() {
		devDiskBase, devDiskErr = e.BuildDevDisk(context.Background(), "dev-base", "ext4")
	})
	if devDiskErr != nil {
		t.Fatalf("development disk: %v", devDiskErr)
	}
	d, err := devDiskBase.Copy(name)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func devInitrd(t *testing.T, e *fixture.Env, name string, d *fixture.DevDisk, upper string, create bool) string {
	t.Helper()
	initrd, err := e.DevPolicyVariant(context.Background(), name, e.DevPolicy(d, upper), create)
	if err != nil {
		t.Fatal(err)
	}
	return initrd
}

// devMachine boots disk d (writes kept: no snapshot) as unit serial with
// the extra command line and testinit actions (each may hold spaces and
// commas).
func devMachine(t *testing.T, e *fixture.Env, name, initrd string, d *fixture.DevDisk, serial, cmdline string, actions ...string) harness.Machine {
	t.Helper()
	for _, a := range actions {
		if strings.Contains(a, `"`) {
			t.Fatalf("action %q: no double quotes on the kernel command line", a)
		}
		cmdline += ` "mcinit_test.action=` + a + `"`
	}
	m := e.Machine(name, initrd, d.Path, serial, cmdline)
	m.DiskSnapshot = false
	return m
}

const devCmdline = "mcinit.profile=development"

// Module actions: load, check, unload, check, load again, check.
var moduleActions = []string{
	"insmod=" + fixture.DevModuleKo, "module=" + fixture.DevModule,
	"rmmod=" + fixture.DevModule, "module=" + fixture.DevModule,
	"insmod=" + fixture.DevModuleKo, "module=" + fixture.DevModule,
}

// wantDevdiff checks the listing of `mcinit devdiff` run as action i.
func wantDevdiff(t *testing.T, r *harness.Result, i int, want string) {
	t.Helper()
	key := "action." + strconv.Itoa(i) + ".exec"
	if rc, _ := r.Value(key + ".rc"); rc != "0" {
		out, _ := r.Value(key + ".out")
		t.Fatalf("mcinit devdiff in the guest: rc %q: %s", rc, out)
	}
	got, _ := r.Value(key + ".out")
	if got != want {
		t.Errorf("mcinit devdiff in the guest listed:\n%s\nwant:\n%s", got, want)
	}
}

// devdiffListing is what the first development boot changes, exactly:
// the marker testinit writes. Its root-writable probe is created and
// removed again, leaving nothing in the upper; the guest CLI is the
// device build (tag mcinit_device), which writes nothing at start-up.
const devdiffListing = "A /var/mcinit-marker\n"

// TestDevPersistentUpper boots one disk with an ext4 upper partition:
// development (write the marker, list it with devdiff in the guest, unload
// and reload a module), development again (the marker survived),
// production (no marker, verified read-only root, module loading locked).
func TestDevPersistentUpper(t *testing.T) {
	t.Parallel()
	e := env(t, "amd64")
	d := devDisk(t, e, "dev-persist")
	initrd := devInitrd(t, e, "dev-partition", d, "partition", false)

	// Boot 1: development writes the marker and diffs it.
	acts := append([]string{"write-marker=persist-1", "exec=" + guestMCInit + " devdiff"}, moduleActions...)
	r := boot(t, devMachine(t, e, "dev-persist-1", initrd, d, fixture.DevSerial, devCmdline, acts...))
	wantReport(t, r, map[string]string{
		"profile":               "development",
		"root.fstype":           "overlay",
		"root_writable":         "yes",
		"marker":                "absent",
		"modules_disabled":      "0",
		"action.0.write-marker": "ok",
		"action.2.insmod":       "ok",
		"action.3.module":       "live",
		"action.4.rmmod":        "ok",
		"action.5.module":       "absent",
		"action.6.insmod":       "ok",
		"action.7.module":       "live",
	})
	if m, _ := r.Value("mount./run/mcinit/upperfs"); !strings.HasPrefix(m, "ext4 /dev/") {
		t.Errorf("the upper is mounted as %q, want the ext4 partition", m)
	}
	wantDevdiff(t, r, 1, devdiffListing)
	if !r.Has("upper=partition:" + fixture.UpperLabel) {
		t.Errorf("the handoff line does not name the upper partition")
	}

	// Boot 2: development again sees the marker on the partition.
	r = boot(t, devMachine(t, e, "dev-persist-2", initrd, d, fixture.DevSerial, devCmdline,
		"exec="+guestMCInit+" devdiff"))
	wantReport(t, r, map[string]string{
		"profile": "development",
		"marker":  "persist-1",
	})
	wantDevdiff(t, r, 0, devdiffListing)

	// Boot 3: production from the same disk: the image alone.
	r = boot(t, devMachine(t, e, "dev-persist-prod", initrd, d, fixture.OtherSerial, "",
		"insmod="+fixture.DevModuleKo, "rmmod="+fixture.DevModule, "module="+fixture.DevModule))
	wantReport(t, r, map[string]string{
		"profile":          "production",
		"marker":           "absent",
		"root.mode":        "ro",
		"root_writable":    "no",
		"modules_disabled": "1",
		"action.0.insmod":  "error: EPERM",
		"action.1.rmmod":   "error: EPERM",
		"action.2.module":  "absent",
	})
	if src, _ := r.Value("root.source"); !strings.HasPrefix(src, "/dev/mapper/") && !strings.HasPrefix(src, "/dev/dm-") {
		t.Errorf("production root source %q is not a device-mapper device", src)
	}
}

// TestDevTmpfsUpper: with a tmpfs upper, a development change is gone at
// the next development boot.
func TestDevTmpfsUpper(t *testing.T) {
	t.Parallel()
	e := env(t, "amd64")
	d := devDisk(t, e, "dev-tmpfs")
	initrd := devInitrd(t, e, "dev-tmpfs", d, "tmpfs", false)
	r := boot(t, devMachine(t, e, "dev-tmpfs-1", initrd, d, fixture.DevSerial, devCmdline, "write-marker=tmpfs-1"))
	wantReport(t, r, map[string]string{
		"profile":               "development",
		"marker":                "absent",
		"action.0.write-marker": "ok",
	})
	r = boot(t, devMachine(t, e, "dev-tmpfs-2", initrd, d, fixture.DevSerial, devCmdline))
	wantReport(t, r, map[string]string{
		"profile": "development",
		"marker":  "absent",
	})
}

// TestDevCreateUpper: an upper partition whose first MiB is zero is
// formatted on first use when the policy sets create_upper (the guest
// writes to it, e2fsck on the host finds it clean, the next boot keeps
// it); refused when the policy does not; a partition holding
// data that is not ext4, or an ext4 superblock the kernel rejects, is
// refused and left untouched.
func TestDevCreateUpper(t *testing.T) {
	t.Parallel()
	e := env(t, "amd64")
	requireTools(t, "e2fsck", "dumpe2fs", "debugfs")
	d := devDisk(t, e, "dev-create")
	// Zero the first MiB only, as a developer starting over would: the
	// rest still holds the old filesystem's blocks.
	if err := d.WriteUpper(0, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	create := devInitrd(t, e, "dev-create", d, "partition", true)
	noCreate := devInitrd(t, e, "dev-nocreate", d, "partition", false)

	// create_upper off: an empty partition is refused, not formatted.
	r := boot(t, devMachine(t, e, "dev-create-off", noCreate, d, fixture.DevSerial, devCmdline))
	wantRefusal(t, r, `development upper partition "`+fixture.UpperLabel+`" (/dev/vda`)
	if !r.Has("is empty and the policy does not set create_upper") {
		t.Error("the refusal does not say why")
	}
	if head, _ := d.ReadUpper(0, 1<<20); !allZero(head) {
		t.Error("the partition was written to without create_upper")
	}

	// create_upper on: formatted, used, clean.
	r = boot(t, devMachine(t, e, "dev-create-on", create, d, fixture.DevSerial, devCmdline,
		"write-marker=created-1", "exec="+guestMCInit+" devdiff"))
	wantReport(t, r, map[string]string{
		"profile":               "development",
		"marker":                "absent",
		"action.0.write-marker": "ok",
	})
	wantDevdiff(t, r, 1, devdiffListing)
	if !r.Has("formatted ext2") {
		t.Error("no console line about formatting the upper")
	}
	img := filepath.Join(t.TempDir(), "upper.img")
	if err := d.ExtractUpper(img); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("e2fsck", "-fn", img).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn on the upper the guest formatted and wrote: %v\n%s", err, out)
	}
	if out, _ := exec.Command("dumpe2fs", "-h", img).CombinedOutput(); !strings.Contains(string(out), "Filesystem volume name:   "+fixture.UpperLabel) {
		t.Errorf("dumpe2fs -h: no volume name %q:\n%s", fixture.UpperLabel, out)
	}
	if out, err := exec.Command("debugfs", "-R", "cat /upper/var/mcinit-marker", img).Output(); err != nil || string(out) != "created-1" {
		t.Errorf("the marker on the upper partition: %q, %v", out, err)
	}

	// The next boot mounts it (after an unclean power-off: testinit
	// syncs, never unmounts) and sees the marker.
	r = boot(t, devMachine(t, e, "dev-create-again", create, d, fixture.DevSerial, devCmdline))
	wantReport(t, r, map[string]string{"profile": "development", "marker": "created-1"})
	if r.Has("formatted ext2") {
		t.Error("the upper was formatted again")
	}

	// An ext4 superblock the kernel rejects (a block count larger than
	// the partition): refused as damaged.
	sb, err := d.ReadUpper(1024, 8)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(sb[4:], 0xfffffff0) // s_blocks_count
	if err := d.WriteUpper(1024, sb); err != nil {
		t.Fatal(err)
	}
	r = boot(t, devMachine(t, e, "dev-create-damaged", create, d, fixture.DevSerial, devCmdline))
	wantRefusal(t, r, `development upper partition "`+fixture.UpperLabel+`" (/dev/vda`)
	if !r.Has("is damaged") {
		t.Error("the refusal does not call the upper damaged")
	}

	// No superblock, data in the first MiB: refused, never formatted.
	wipeUpper(t, d)
	junk := []byte("not a filesystem, but somebody's data")
	if err := d.WriteUpper(300<<10, junk); err != nil {
		t.Fatal(err)
	}
	r = boot(t, devMachine(t, e, "dev-create-data", create, d, fixture.DevSerial, devCmdline))
	wantRefusal(t, r, `development upper partition "`+fixture.UpperLabel+`" (/dev/vda`)
	if !r.Has("not formatting it") {
		t.Error("the refusal does not say the partition was left alone")
	}
	if b, _ := d.ReadUpper(300<<10, len(junk)); string(b) != string(junk) {
		t.Error("the data on the partition was overwritten")
	}
	if sb, _ := d.ReadUpper(1024, 1024); !allZero(sb) {
		t.Error("a superblock was written over the data")
	}
}

// wipeUpper zeroes the whole upper partition.
func wipeUpper(t *testing.T, d *fixture.DevDisk) {
	t.Helper()
	zero := make([]byte, 1<<20)
	for off := int64(0); off < d.Upper.Size; off += int64(len(zero)) {
		n := min(int64(len(zero)), d.Upper.Size-off)
		if err := d.WriteUpper(off, zero[:n]); err != nil {
			t.Fatal(err)
		}
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return len(b) > 0
}

// TestDevMissingUpper: a policy naming an upper partition the disk lacks
// refuses after the bounded wait instead of hanging.
func TestDevMissingUpper(t *testing.T) {
	t.Parallel()
	e := env(t, "amd64")
	p := e.DefaultPolicy()
	p.Upper, p.UpperLabel = "partition", fixture.UpperLabel
	p.RescueShell = false // a refusal halts instead of waiting on the console
	initrd, err := e.PolicyVariant(context.Background(), "dev-missing-upper", p)
	if err != nil {
		t.Fatal(err)
	}
	r := boot(t, e.Machine("dev-missing-upper", initrd, e.Disk, fixture.DevSerial, devCmdline))
	wantRefusal(t, r, `development upper partition "`+fixture.UpperLabel+`": no such partition after `)
}
