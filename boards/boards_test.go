package boards_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/mcinit/mcinit/boards"
	"github.com/mcinit/mcinit/identity"
)

// debpkg fetches (or finds in the cache) a Debian package and returns the
// directory it was unpacked into.
func debpkg(t testing.TB, arch, name string) string {
	t.Helper()
	out, err := exec.Command("../scripts/debpkg.sh", arch, name).Output()
	if err != nil {
		t.Fatalf("scripts/debpkg.sh %s %s: %v", arch, name, err)
	}
	return strings.TrimSpace(string(out))
}

// one returns the single directory matching a glob.
func one(t testing.TB, pattern string) string {
	t.Helper()
	m, _ := filepath.Glob(pattern)
	if len(m) != 1 {
		t.Fatalf("%s: %d matches, want 1", pattern, len(m))
	}
	return m[0]
}

func shipped(t testing.TB) *boards.Set {
	t.Helper()
	s, err := boards.Shipped()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestShipped(t *testing.T) {
	s := shipped(t)
	var names []string
	for _, b := range s.Boards() {
		names = append(names, b.Name)
	}
	want := "generic-aarch64 generic-x86_64 intel-nuc intel-nuc-8i7beh lenovo-thinkpad-x1-11th-gen lenovo-thinkpad-x1-carbon nxp-imx8mp-evk nxp-imx8mq-evk pine64-pinebook-pro qemu-aarch64-virt qemu-x86_64 raspberrypi-4b"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("shipped boards:\n got %s\nwant %s", got, want)
	}
	// The directory form (what /init reads) gives the same set.
	d, err := boards.Load(os.DirFS("."))
	if err != nil || len(d.Boards()) != len(names) {
		t.Errorf("Load(.) = %v, %v", d, err)
	}
}

func dtID(compat ...string) identity.Identity {
	return identity.Identity{Source: identity.SourceDT, Arch: "arm64", Compatible: compat}
}

func TestMatchShippedIdentities(t *testing.T) {
	s := shipped(t)
	for _, c := range []struct {
		id   identity.Identity
		want string
	}{
		{dtID("linux,dummy-virt"), "qemu-aarch64-virt"},
		{dtID("raspberrypi,4-model-b", "brcm,bcm2711"), "raspberrypi-4b"},
		{identity.Identity{Source: identity.SourceDMI, Arch: "amd64", SysVendor: "QEMU", ProductName: "mcinit-e2e", Serial: "SN-1"}, "qemu-x86_64"},
		{identity.Identity{Source: identity.SourceDMI, Arch: "amd64", SysVendor: "LENOVO", ProductName: "20XW0055GE", ProductFamily: "ThinkPad X1 Carbon Gen 9"}, "lenovo-thinkpad-x1-carbon"},
		{identity.Identity{Source: identity.SourceDMI, Arch: "amd64", SysVendor: "LENOVO", ProductVersion: "ThinkPad X1 Carbon 3rd"}, "lenovo-thinkpad-x1-carbon"},
		{identity.Identity{Source: identity.SourceDMI, Arch: "amd64", SysVendor: "Intel(R) Client Systems", ProductName: "NUC11PAHi5", ProductFamily: "Intel NUC"}, "intel-nuc"},
		{identity.Identity{Source: identity.SourceDMI, Arch: "amd64", SysVendor: "Intel Corporation", BoardName: "NUC5i5RYB"}, "intel-nuc"},
		// Model boards imported from nixos-hardware beat the family ones.
		{identity.Identity{Source: identity.SourceDMI, Arch: "amd64", SysVendor: "LENOVO", ProductName: "21HM004GGE", ProductFamily: "ThinkPad X1 Carbon Gen 11"}, "lenovo-thinkpad-x1-11th-gen"},
		{identity.Identity{Source: identity.SourceDMI, Arch: "amd64", SysVendor: "Intel Corporation", ProductName: "NUC8i7BEH", BoardName: "NUC8BEB"}, "intel-nuc-8i7beh"},
		{identity.Identity{Source: identity.SourceDMI, Arch: "amd64", SysVendor: "Intel(R) Client Systems", ProductName: "NUC8i7BEH", ProductFamily: "Intel NUC"}, "intel-nuc-8i7beh"},
	} {
		b, err := s.Match(c.id, false)
		if err != nil || b.Name != c.want {
			t.Errorf("Match(%s) = %v, %v; want %s", c.id, b, err, c.want)
		}
	}
	// A DMI identity on arm64 must not pick an x86 board, and a DT rule
	// never matches DMI data (nor the reverse).
	other := identity.Identity{Source: identity.SourceDMI, Arch: "arm64", SysVendor: "QEMU"}
	if b, err := s.Match(other, false); !errors.Is(err, boards.ErrNoMatch) {
		t.Errorf("arm64 QEMU DMI matched %v (%v)", b, err)
	}
}

func TestGenericFallback(t *testing.T) {
	s := shipped(t)
	unknown := identity.Identity{Source: identity.SourceDMI, Arch: "amd64", SysVendor: "Dell Inc."}
	if _, err := s.Match(unknown, false); !errors.Is(err, boards.ErrNoMatch) || !strings.Contains(err.Error(), "Dell Inc.") {
		t.Errorf("unknown board without allowGeneric: %v", err)
	}
	if b, err := s.Match(unknown, true); err != nil || b.Name != "generic-x86_64" {
		t.Errorf("unknown x86 board with allowGeneric: %v, %v", b, err)
	}
	if b, err := s.Match(dtID("acme,thing"), true); err != nil || b.Name != "generic-aarch64" {
		t.Errorf("unknown arm board with allowGeneric: %v, %v", b, err)
	}
	noGeneric, _ := boards.NewSet(mustParse(t, "a.toml", `name = "a"
arch = "amd64"
[[match]]
sys_vendor = "A"`))
	if _, err := noGeneric.Match(unknown, true); !errors.Is(err, boards.ErrNoMatch) {
		t.Errorf("no generic board in the set: %v", err)
	}
}

func mustParse(t *testing.T, file, src string) *boards.Board {
	t.Helper()
	b, err := boards.Parse(file, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSpecificity(t *testing.T) {
	set := func(files map[string]string) *boards.Set {
		fsys := fstest.MapFS{}
		for n, src := range files {
			fsys[n] = &fstest.MapFile{Data: []byte(src)}
		}
		s, err := boards.Load(fsys)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	dt := set(map[string]string{
		"soc.toml":   "name = \"soc\"\narch = \"arm64\"\n[[match]]\ncompatible = [\"brcm,bcm2711\"]\n",
		"board.toml": "name = \"board\"\narch = \"arm64\"\n[[match]]\ncompatible = [\"raspberrypi,4-model-b\"]\n",
		"twin.toml":  "name = \"twin\"\narch = \"arm64\"\n[[match]]\ncompatible = [\"acme,x\", \"raspberrypi,400\"]\n",
	})
	if b, err := dt.Match(dtID("raspberrypi,4-model-b", "brcm,bcm2711"), false); err != nil || b.Name != "board" {
		t.Errorf("earlier compatible should win: %v, %v", b, err)
	}
	if b, err := dt.Match(dtID("raspberrypi,400", "brcm,bcm2711"), false); err != nil || b.Name != "twin" {
		t.Errorf("any listed compatible matches: %v, %v", b, err)
	}
	if b, err := dt.Match(dtID("raspberrypi,4-compute-module", "brcm,bcm2711"), false); err != nil || b.Name != "soc" {
		t.Errorf("SoC fallback: %v, %v", b, err)
	}

	dmi := set(map[string]string{
		"vendor.toml": "name = \"vendor\"\narch = \"amd64\"\n[[match]]\nsys_vendor = \"ACME\"\n",
		"glob.toml":   "name = \"glob\"\narch = \"amd64\"\n[[match]]\nsys_vendor = \"ACME\"\nproduct_name = \"Rocket*\"\n",
		"exact.toml":  "name = \"exact\"\narch = \"amd64\"\n[[match]]\nsys_vendor = \"ACME\"\nproduct_name = \"Rocket 2\"\n",
		"same-a.toml": "name = \"same-a\"\narch = \"amd64\"\n[[match]]\nsys_vendor = \"Twin\"\n",
		"same-b.toml": "name = \"same-b\"\narch = \"amd64\"\n[[match]]\nsys_vendor = \"Tw?n\"\n[[match]]\nsys_vendor = \"Twin\"\n",
	})
	id := func(v, p string) identity.Identity {
		return identity.Identity{Source: identity.SourceDMI, Arch: "amd64", SysVendor: v, ProductName: p}
	}
	for _, c := range [][3]string{
		{"ACME", "Rocket 2", "exact"}, {"ACME", "Rocket 3", "glob"}, {"ACME", "Anvil", "vendor"},
	} {
		if b, err := dmi.Match(id(c[0], c[1]), false); err != nil || b.Name != c[2] {
			t.Errorf("%s/%s: %v, %v; want %s", c[0], c[1], b, err, c[2])
		}
	}
	_, err := dmi.Match(id("Twin", ""), false)
	if !errors.Is(err, boards.ErrAmbiguous) || !strings.Contains(err.Error(), "same-a and same-b") {
		t.Errorf("equal boards: %v", err)
	}
	// Same compatible in two files.
	dup := set(map[string]string{
		"x.toml": "name = \"x\"\narch = \"arm64\"\n[[match]]\ncompatible = [\"v,b\"]\n",
		"y.toml": "name = \"y\"\narch = \"arm64\"\n[[match]]\ncompatible = [\"v,b\"]\n",
	})
	if _, err := dup.Match(dtID("v,b"), true); !errors.Is(err, boards.ErrAmbiguous) || !strings.Contains(err.Error(), "x and y") {
		t.Errorf("same compatible: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	const base = "name = \"b\"\narch = \"arm64\"\n"
	const rule = "[[match]]\ncompatible = [\"v,b\"]\n"
	for _, c := range []struct{ file, src, want string }{
		{"b.toml", base + "colour = \"red\"\n" + rule, `unknown field "colour"`},
		{"b.toml", base + rule + "board_nmae = \"x\"\n", `unknown field "match.board_nmae"`},
		{"b.toml", base + "arch = \"amd64\"\n" + rule, "arch"},
		{"b.toml", base + "modules = \"virtio\"\n" + rule, "modules"},
		{"b.toml", base + "modules = [{ name = \"virtio blk\" }]\n" + rule, "modules[0].name"},
		{"b.toml", base + "modules = [{ name = \"a-b\" }, { name = \"a_b\" }]\n" + rule, "modules[1].name"},
		{"b.toml", base + "modules = [{ name = \"a\", params = \"x\\ny\" }]\n" + rule, "modules[0].params"},
		{"b.toml", base + "modules = [{ name = \"a\", parms = \"x\" }]\n" + rule, `unknown field "modules.parms"`},
		{"c.toml", base + rule, `name: "b" must equal the file name "c"`},
		{"b.toml", "name = \"b\"\narch = \"riscv64\"\n" + rule, "arch"},
		{"b.toml", base, "match: at least one rule"},
		{"b.toml", base + "[[match]]\n", "match[0].compatible: empty rule"},
		{"b.toml", base + "[[match]]\ncompatible = [\"a\"]\nsys_vendor = \"Q\"\n", "not both"},
		{"b.toml", base + "[[match]]\nproduct_name = \"[\"\n", "match[0].product_name: bad pattern"},
		{"b.toml", base + "[[match]]\ncompatible = [\"\"]\n", "match[0].compatible[0]"},
		{"b.toml", base + rule + "[quirks]\nroot_wait = 9999\n", "quirks.root_wait"},
		{"b.toml", base + rule + "[quirks]\nroot_wait = \"10\"\n", "root_wait"},
		{"b.toml", base + rule + "[quirks]\nconsole = \"tty S0\"\n", "quirks.console"},
		{"b.toml", base + rule + "[quirks]\nfirmware = [\"../etc/shadow\"]\n", "quirks.firmware[0]"},
		{"b.toml", base + rule + "[quirks]\nfirmware = [\"/abs\"]\n", "quirks.firmware[0]"},
		{"b.toml", base + "generic = true\n" + rule, "generic board has no match rules"},
		{"b.toml", base + "generic = true\n", `must be named "generic-aarch64"`},
		{"b.toml", base + "notes = \"x\"\nnotes = \"y\"\n" + rule, "notes"},
		{"b.toml", base + "[quirks]\n[quirks]\n" + rule, "quirks"},
		{"b.toml", "name = \"b\"\x00", "NUL"},
	} {
		_, err := boards.Parse(c.file, []byte(c.src))
		if err == nil {
			t.Errorf("%q: accepted", c.src)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.file) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error %q should name %q and the file, on one line", c.src, err, c.want)
		}
	}
	if _, err := boards.NewSet(mustParse(t, "b.toml", base+rule), mustParse(t, "b.toml", base+rule)); err == nil {
		t.Error("duplicate board names accepted")
	}
}

func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := boards.Parse("fuzz.toml", data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		// A parsed board must match without panicking.
		s, err := boards.NewSet(b)
		if err != nil {
			t.Fatal(err)
		}
		s.Match(identity.Identity{Source: identity.SourceDMI, Arch: b.Arch, SysVendor: "x"}, true)
		s.Match(identity.Identity{Source: identity.SourceDT, Arch: b.Arch, Compatible: []string{"x"}}, true)
	})
}
