package harness

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcinit/mcinit/diskimage"
)

// buildInitramfs builds the Go package pkg (relative to the repo root, or a
// file path relative to this package) for arch and packs it as /init.
func buildInitramfs(t *testing.T, dir, pkg, arch string) string {
	t.Helper()
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "init")
	if err := diskimage.GoBuild(context.Background(), dir, pkg, arch, bin); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "initramfs.cpio")
	if err := WriteInitramfs(out, bin, nil); err != nil {
		t.Fatal(err)
	}
	return out
}

// kernels caches Kernel's answer per architecture for this test binary.
var kernels sync.Map

func kernel(t *testing.T, arch string) string {
	t.Helper()
	if k, ok := kernels.Load(arch); ok {
		return k.(string)
	}
	k, mods, kver, err := Kernel(context.Background(), arch)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(mods, kver) {
		t.Fatalf("modules dir %s does not end in %s", mods, kver)
	}
	kernels.Store(arch, k)
	return k
}

// TestBootHello boots Debian's cloud kernel with a trivial /init and a
// swtpm TPM on both architectures: the kernel must reach /init and the
// machine must power off.
func TestBootHello(t *testing.T) {
	RequireE2E(t)
	logs := LogDir(t)
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			m := Machine{
				Name: "hello-" + arch, Arch: arch, Kernel: kernel(t, arch),
				Initrd:  buildInitramfs(t, ".", "./testdata/hello/main.go", arch),
				TPM:     true,
				Timeout: 180 * time.Second, LogDir: logs,
			}
			r, err := Boot(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %s in %v", arch, r.Outcome, r.Elapsed.Round(time.Millisecond))
			if r.Outcome != PoweredOff {
				t.Fatalf("outcome %s, want %s; log %s", r.Outcome, PoweredOff, r.LogPath)
			}
			if !r.Has("HELLO-FROM-INIT") {
				t.Fatalf("no line from /init; log %s", r.LogPath)
			}
			run, ok := r.FirstStamped("Run /init as init process")
			if !ok {
				t.Fatalf("kernel did not report running /init; log %s", r.LogPath)
			}
			t.Logf("%s: /init started at %v guest time", arch, run.TS)
			if arch == "amd64" && !r.Has("tpm_tis") && !r.Has("TPM") {
				t.Errorf("no TPM seen by the kernel; log %s", r.LogPath)
			}
		})
	}
}

// TestBootTestinit boots testinit as the initramfs's /init (no mcinit, so
// no /run/mcinit) and checks its report, an action, and the timestamps.
func TestBootTestinit(t *testing.T) {
	RequireE2E(t)
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	m := Machine{
		Name: "testinit-amd64", Arch: "amd64", Kernel: kernel(t, "amd64"),
		Initrd:  buildInitramfs(t, root, "./cmds/testinit", "amd64"),
		Append:  "mcinit_test.actions=read-file=/init,read-file=/nonexistent,halt",
		SMBIOS:  []string{"type=1,manufacturer=mcinit,product=harness-test"},
		Timeout: 180 * time.Second, LogDir: LogDir(t),
	}
	r, err := Boot(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	// The halt action ends the run with a halt, which the harness detects
	// (QEMU itself would keep running).
	if r.Outcome != Halted || !r.ReportComplete {
		t.Fatalf("outcome %s, report complete %v; log %s", r.Outcome, r.ReportComplete, r.LogPath)
	}
	for k, want := range map[string]string{
		"pid1":               "true",
		"profile":            "absent",
		"run_mcinit":         "absent",
		"root.fstype":        "rootfs",
		"root.mode":          "rw",
		"mount./proc":        "proc proc rw,nosuid,noexec,relatime",
		"root_writable":      "yes",
		"modules_disabled":   "0",
		"action.1.read-file": "/nonexistent error=ENOENT",
		"dmi_sys_vendor":     "mcinit",
		"dmi_product_name":   "harness-test",
	} {
		if got := r.Report[k]; got != want {
			t.Errorf("report %s = %q, want %q", k, got, want)
		}
	}
	if v := r.Report["action.0.read-file"]; !strings.HasPrefix(v, "/init sha256=") {
		t.Errorf("action.0.read-file = %q", v)
	}
	ts, ok := r.KmsgInitTS()
	line, ok2 := r.FirstStamped("testinit: started")
	if !ok || !ok2 || ts != line.TS {
		t.Errorf("kmsg_init_ts %v (%v) differs from the console line's %v (%v)", ts, ok, line.TS, ok2)
	}
	d, ok := r.InitToRealInit()
	if !ok {
		t.Errorf("no interval from /init to testinit")
	}
	t.Logf("testinit started %v after the kernel ran it, at %v; boot took %v", d, ts, r.Elapsed.Round(time.Millisecond))
	if t.Failed() {
		t.Logf("report: %v", r.Report)
	}
}

// TestBootDTB dumps the aarch64 virt machine's device tree, rewrites its
// compatible to an i.MX8 board and boots testinit with it: the kernel must
// report the edited identity.
func TestBootDTB(t *testing.T) {
	RequireE2E(t)
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	m := Machine{
		Name: "dtb-arm64", Arch: "arm64", Kernel: kernel(t, "arm64"),
		Initrd: buildInitramfs(t, root, "./cmds/testinit", "arm64"),
		TPM:    true, Timeout: 180 * time.Second, LogDir: LogDir(t),
	}
	dir := t.TempDir()
	virt := filepath.Join(dir, "virt.dtb")
	if err := DumpDTB(context.Background(), m, virt); err != nil {
		t.Fatal(err)
	}
	m.DTB = filepath.Join(dir, "imx8.dtb")
	compat := []string{"fsl,imx8mp-evk", "fsl,imx8mp"}
	if err := EditDTBCompatible(virt, m.DTB, compat, "NXP i.MX8MPlus EVK board"); err != nil {
		t.Fatal(err)
	}
	r, err := Boot(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	if r.Outcome != PoweredOff || !r.ReportComplete {
		t.Fatalf("outcome %s, report complete %v; log %s", r.Outcome, r.ReportComplete, r.LogPath)
	}
	if got := r.Report["dt_compatible"]; got != strings.Join(compat, ",") {
		t.Errorf("dt_compatible = %q, want %q", got, strings.Join(compat, ","))
	}
	if got := r.Report["dt_model"]; got != "NXP i.MX8MPlus EVK board" {
		t.Errorf("dt_model = %q", got)
	}
	if !r.Has("Machine model: NXP i.MX8MPlus EVK board") {
		t.Errorf("kernel did not report the edited model; log %s", r.LogPath)
	}
	t.Logf("arm64 boot with edited DTB took %v", r.Elapsed.Round(time.Millisecond))
}

// TestBootPanic boots an initramfs whose /init cannot run: the kernel
// panics, and the harness reports it without waiting for the timeout.
func TestBootPanic(t *testing.T) {
	RequireE2E(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "init")
	if err := os.WriteFile(bad, []byte("not an executable\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(dir, "initrd.cpio")
	if err := WriteInitramfs(initrd, bad, nil); err != nil {
		t.Fatal(err)
	}
	m := Machine{Name: "panic-amd64", Arch: "amd64", Kernel: kernel(t, "amd64"), Initrd: initrd,
		Timeout: 180 * time.Second, LogDir: LogDir(t)}
	r, err := Boot(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	if r.Outcome != Panicked {
		t.Fatalf("outcome %s, want %s; log %s", r.Outcome, Panicked, r.LogPath)
	}
	if r.ReportComplete || len(r.Mcinit) != 0 {
		t.Errorf("unexpected report or mcinit lines")
	}
	t.Logf("panic detected after %v", r.Elapsed.Round(time.Millisecond))
}
