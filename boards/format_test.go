package boards_test

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/boards"
)

const fullBoard = `name = "full"
arch = "arm64"
notes = """
a board with \"every\" field
second line\\n \"\"\"
"""

modules = [
  { name = "i2c-rk3x", from = "boot.initrd.kernelModules" },
  { name = "nvme", from = "boot.initrd.availableKernelModules" },
  { name = "dm-verity" },
  { name = "overlay", profile = "development" },
]

system_modules = ["kvm"]
blacklist = ["pcspkr"]
kernel_params = ["console=ttyS2,1500000", "cma=64M"]

[[match]]
compatible = ["pine64,pinebook-pro"]

[quirks]
root_wait = 10
console = "ttyS2,1500000"

[device_tree]
name = "rockchip/rk3399-pinebook-pro.dtb"
filter = "rk3399-*.dtb"
overlays = [
  { name = "fan", filter = "rk3399-pinebook-pro.dtb" },
  { name = "leds" },
]

[recorded]
kernel_package = "linuxPackages_latest"
firmware = ["raspberrypiWirelessFirmware"]
redistributable_firmware = true

[provenance]
source = "nixos-hardware"
repository = "https://github.com/NixOS/nixos-hardware"
commit = "0471accf8d0a8210b31d947497d179ecc99e0021"
profile = "pine64/pinebook-pro"
`

func TestFormatRoundTrip(t *testing.T) {
	b := mustParse(t, "full.toml", fullBoard)
	if !b.Provenance.Imported() || b.DeviceTree.Overlays[0].Filter != "rk3399-pinebook-pro.dtb" || b.Modules[1].From != boards.FromInitrdAvailableModules {
		t.Fatalf("parsed: %+v", b)
	}
	out := boards.Format(b)
	if !bytes.Equal(out, []byte(fullBoard)) {
		t.Errorf("Format changed the canonical file:\n%s", out)
	}
	// Every shipped board survives Format → Parse unchanged.
	for _, sb := range shipped(t).Boards() {
		again, err := boards.Parse(sb.Name+".toml", boards.Format(sb))
		if err != nil || !reflect.DeepEqual(again, sb) {
			t.Errorf("%s: round trip: %v\n%+v\n%+v", sb.Name, err, again, sb)
		}
	}
}

func TestParseImportedFieldErrors(t *testing.T) {
	const base = "name = \"b\"\narch = \"arm64\"\n"
	const rule = "[[match]]\ncompatible = [\"v,b\"]\n"
	for _, c := range []struct{ src, want string }{
		{base + "modules = [{ name = \"a\", from = \"boot.kernelModules\" }]\n" + rule, "modules[0].from"},
		{base + "system_modules = [\"a b\"]\n" + rule, "system_modules[0]"},
		{base + "system_modules = [\"a-b\", \"a_b\"]\n" + rule, "system_modules[1]: \"a_b\" is listed twice"},
		{base + "modules = [{ name = \"pcspkr\" }]\nblacklist = [\"pcspkr\"]\n" + rule, "blacklist[0]: \"pcspkr\" is also in modules"},
		{base + "kernel_params = [\"a b\"]\n" + rule, "kernel_params[0]"},
		{base + "kernel_params = [\"x=\\\"q\\\"\"]\n" + rule, "kernel_params[0]"},
		{base + "kernel_params = [\"\"]\n" + rule, "kernel_params[0]"},
		{base + rule + "[device_tree]\nname = \"../x.dtb\"\n", "device_tree.name"},
		{base + rule + "[device_tree]\nfilter = \"[\"\n", "device_tree.filter: bad pattern"},
		{base + rule + "[device_tree]\noverlays = [{ filter = \"*.dtb\" }]\n", "device_tree.overlays[0].name"},
		{base + rule + "[device_tree]\noverlays = [{ name = \"x\", dtsText = \"y\" }]\n", `unknown field "device_tree.overlays.dtsText"`},
		{base + rule + "[recorded]\nkernel_package = \"a b\"\n", "recorded.kernel_package"},
		{base + rule + "[recorded]\nfirmware = [\"\"]\n", "recorded.firmware[0]"},
		{base + rule + "[provenance]\nprofile = \"a/b\"\n", "provenance.source"},
		{base + rule + "[provenance]\nsource = \"nixos-hardware\"\ncommit = \"abc\"\nprofile = \"a/b\"\n", "provenance.commit"},
		{base + rule + "[provenance]\nsource = \"nixos-hardware\"\ncommit = \"0471accf8d0a8210b31d947497d179ecc99e0021\"\nprofile = \"../b\"\n", "provenance.profile"},
		{base + rule + "[provenance]\nsource = \"nixos-hardware\"\ncommit = \"0471accf8d0a8210b31d947497d179ecc99e0021\"\n", "provenance.profile"},
	} {
		_, err := boards.Parse("b.toml", []byte(c.src))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.src, err, c.want)
		}
	}
}

// FuzzFormat checks that whatever Parse accepts, Format writes back to an
// equal board.
func FuzzFormat(f *testing.F) {
	f.Add([]byte(fullBoard))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := boards.Parse("full.toml", data)
		if err != nil {
			return
		}
		again, err := boards.Parse("full.toml", boards.Format(b))
		if err != nil {
			t.Fatalf("formatted board does not parse: %v\n%s", err, boards.Format(b))
		}
		// Empty lists are written as absent, so compare the canonical form.
		if !bytes.Equal(boards.Format(again), boards.Format(b)) {
			t.Fatalf("round trip changed the board:\n%+v\n%+v", b, again)
		}
	})
}

func TestMissingParams(t *testing.T) {
	b := &boards.Board{KernelParams: []string{"console=ttyS2,1500000", "cma=64M", "quiet"}}
	got := b.MissingParams(`BOOT_IMAGE=/vmlinuz "console=ttyS2,1500000" quiet  mcinit.debug`)
	if !reflect.DeepEqual(got, []string{"cma=64M"}) {
		t.Errorf("MissingParams = %v", got)
	}
}
