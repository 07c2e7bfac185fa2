package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/boards"
)

const (
	hwFixtures = "../../nixhw/testdata/hw"
	testCommit = "0123456789abcdef0123456789abcdef01234567"
)

// debianModules returns the module tree of a Debian kernel package.
func debianModules(t *testing.T, arch, pkg string) string {
	t.Helper()
	out, err := exec.Command("../../scripts/debpkg.sh", arch, pkg).Output()
	if err != nil {
		t.Fatalf("scripts/debpkg.sh %s %s: %v", arch, pkg, err)
	}
	m, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "lib/modules/*"))
	if len(m) != 1 {
		t.Fatalf("%s: %d module trees", pkg, len(m))
	}
	return m[0]
}

func needNixInstantiate(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("MCINIT_E2E") != "" {
			t.Fatal("nix-instantiate not installed (Debian package nix-bin, in DEB_PACKAGES)")
		}
		t.Skip("nix-instantiate not installed")
	}
}

func runBoardsVerb(args ...string) (stdout, stderr string, code int) {
	var o, e bytes.Buffer
	var err error
	switch args[0] {
	case "import":
		err = boardsImport(args[1:], &o, &e)
	case "diff":
		err = boardsDiff(args[1:], &o, &e)
	}
	if err != nil {
		e.WriteString(err.Error() + "\n")
	}
	return o.String(), e.String(), exitCode("boards", err)
}

func TestBoardsImport(t *testing.T) {
	needNixInstantiate(t)
	amd64 := debianModules(t, "amd64", "linux-image-amd64")
	common := []string{"-commit", testCommit, "-kernel-modules", amd64}

	// A profile whose modules all exist in Debian's amd64 kernel.
	out, errOut, code := runBoardsVerb(append(append([]string{"import"}, common...), "-dmi", "sys_vendor=ACME", "-dmi", "product_name=Rocket*", hwFixtures, "acme/board-a/variant")...)
	if code != exitOK {
		t.Fatalf("import: exit %d: %s", code, errOut)
	}
	b, err := boards.Parse("acme-board-a-variant.toml", []byte(out))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if b.Arch != "amd64" || len(b.Match) != 1 || b.Match[0].SysVendor != "ACME" || b.Match[0].ProductName != "Rocket*" ||
		b.Provenance.Commit != testCommit || b.Provenance.Profile != "acme/board-a/variant" ||
		strings.Join(b.KernelParams, " ") != "acme.quirk=1 mem_sleep_default=deep" ||
		strings.Join(b.SystemModules, " ") != "kvm-intel coretemp" || len(b.Modules) != 3 || b.Modules[0].From != boards.FromInitrdAvailableModules {
		t.Errorf("imported board:\n%s", out)
	}

	// -o writes the file; diff against the same profile is empty, against
	// its parent shows what a re-import would change (exit 3).
	file := filepath.Join(t.TempDir(), "acme-board-a-variant.toml")
	if _, errOut, code := runBoardsVerb(append(append([]string{"import"}, common...), "-dmi", "sys_vendor=ACME", "-o", file, hwFixtures, "acme/board-a/variant")...); code != exitOK {
		t.Fatalf("import -o: exit %d: %s", code, errOut)
	}
	if out, errOut, code := runBoardsVerb("diff", "-commit", testCommit, file, hwFixtures, "acme/board-a/variant"); code != exitOK || !strings.Contains(out, "up to date") {
		t.Errorf("diff, same profile: exit %d\n%s%s", code, out, errOut)
	}
	out, _, code = runBoardsVerb("diff", "-commit", testCommit, file, hwFixtures, "acme/board-a")
	for _, want := range []string{`+  { name = "acme_gpu", from = "boot.initrd.kernelModules" },`, `-kernel_params = ["acme.quirk=1", "mem_sleep_default=deep"]`, `+blacklist = ["ath3k"]`, `+profile = "acme/board-a"`} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("diff against the parent lacks %q (exit %d):\n%s", want, code, out)
		}
	}
	if code != exitRejected {
		t.Errorf("diff with changes: exit %d, want 3", code)
	}

	// An unknown module is an error naming it.
	_, errOut, code = runBoardsVerb(append(append([]string{"import"}, common...), "-dmi", "sys_vendor=ACME", hwFixtures, "acme/board-a")...)
	if code != exitError || !strings.Contains(errOut, "module acme_gpu: not found") {
		t.Errorf("unknown module: exit %d: %s", code, errOut)
	}
	// Nothing usable: exit 3.
	_, errOut, code = runBoardsVerb(append(append([]string{"import"}, common...), "-dmi", "sys_vendor=ACME", hwFixtures, "acme/nothing")...)
	if code != exitRejected || !strings.Contains(errOut, "gives nothing mcinit can use") {
		t.Errorf("nothing usable: exit %d: %s", code, errOut)
	}
	// No way to recognise the board: a usage error.
	if _, _, code := runBoardsVerb(append(append([]string{"import"}, common...), "-arch", "amd64", hwFixtures, "acme/board-a/variant")...); code != exitUsage {
		t.Errorf("no match rule: exit %d", code)
	}
	// Unresolved options are reported, one line each.
	_, errOut, _ = runBoardsVerb(append(append([]string{"import"}, common...), "-dmi", "sys_vendor=ACME", hwFixtures, "acme/board-c")...)
	if !strings.Contains(errOut, "unresolved: boot.kernelPackages (a package: pkgs.linuxPackagesFor(pkgs.callPackage(./kernel.nix)(…)))\n") {
		t.Errorf("unresolved report:\n%s", errOut)
	}
}

// TestBoardsImportDTB proposes the match rule from a real device tree and
// checks the modules against Debian's arm64 kernel.
func TestBoardsImportDTB(t *testing.T) {
	needNixInstantiate(t)
	arm64 := debianModules(t, "arm64", "linux-image-arm64")
	dtbs, _ := filepath.Glob(filepath.Join(arm64, "../../../usr/lib/linux-image-*/rockchip/rk3399-pinebook-pro.dtb"))
	if len(dtbs) != 1 {
		t.Fatalf("pinebook pro dtb: %v", dtbs)
	}
	out, errOut, code := runBoardsVerb("import", "-commit", testCommit, "-kernel-modules", arm64, "-dtb", dtbs[0], "-name", "acme-b", hwFixtures, "acme/board-b")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	b, err := boards.Parse("acme-b.toml", []byte(out))
	if err != nil || b.Arch != "arm64" || len(b.Match) != 1 || strings.Join(b.Match[0].Compatible, " ") != "pine64,pinebook-pro" ||
		b.DeviceTree.Name != "rockchip/rk3399-acme-b.dtb" || len(b.DeviceTree.Overlays) != 1 {
		t.Errorf("%v\n%s", err, out)
	}
	if !strings.Contains(errOut, `proposed match rule (from `) {
		t.Errorf("no proposal reported: %s", errOut)
	}
}

// TestBoardsImportSMBIOS proposes a DMI rule from a /sys/class/dmi/id copy.
func TestBoardsImportSMBIOS(t *testing.T) {
	needNixInstantiate(t)
	amd64 := debianModules(t, "amd64", "linux-image-amd64")
	dmi := t.TempDir()
	for k, v := range map[string]string{"sys_vendor": "ACME\n", "product_name": "Rocket 2\n", "product_family": "Rocket\n"} {
		if err := os.WriteFile(filepath.Join(dmi, k), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, code := runBoardsVerb("import", "-commit", testCommit, "-kernel-modules", amd64, "-smbios", dmi, hwFixtures, "acme/board-a/variant")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	b, err := boards.Parse("acme-board-a-variant.toml", []byte(out))
	if err != nil || b.Arch != "amd64" || len(b.Match) != 1 || b.Match[0].SysVendor != "ACME" || b.Match[0].ProductFamily != "Rocket" || b.Match[0].ProductName != "" {
		t.Errorf("%v\n%s", err, out)
	}
}
