package e2e

import (
	"context"
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

// devdiffListing is what the first development boot changes: the marker
// testinit writes (its root-writable probe is created and removed again,
// leaving nothing in the upper).
const devdiffListing = "A /var/mcinit-marker\n"

// TestDevPersistentUpper boots one disk with an ext4 upper partition:
// development (write the marker, list it with devdiff in the guest, unload
// and reload a module), development again (the marker survived),
// production (no marker, verified read-only root, module loading locked).
func TestDevPersistentUpper(t *testing.T) {
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
// the next development boot (and the partition's content is never seen).
func TestDevTmpfsUpper(t *testing.T) {
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
