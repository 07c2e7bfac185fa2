package identity

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/internal/testenv"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dmiDirFromCapture writes the name=value lines a booted guest printed from
// /sys/class/dmi/id back into a directory of attribute files.
func dmiDirFromCapture(t *testing.T, name string) string {
	dir := t.TempDir()
	for _, line := range strings.Split(string(readTestdata(t, name)), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v+"\n"), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestQEMUCaptures reads SMBIOS tables captured from booted QEMU guests
// (testdata/capture-qemu-smbios.sh) and checks them against what the
// guest kernel itself showed in /sys/class/dmi/id.
func TestQEMUCaptures(t *testing.T) {
	want := map[string]Identity{
		"q35-e2e": {Source: SourceDMI, Arch: "amd64", SysVendor: "QEMU", ProductName: "mcinit-e2e",
			ProductVersion: "1.0", ProductFamily: "mcinit-test", ProductSKU: "SKU-7",
			BoardVendor: "QEMU-board", BoardName: "e2e-board", BoardVersion: "rev-B",
			Serial: "SN-0001", SystemUUID: "8c4f6b0e-1d2a-4e3b-9f5c-0a1b2c3d4e5f"},
		"pc-default": {Source: SourceDMI, Arch: "amd64", SysVendor: "QEMU",
			ProductName: "Standard PC (i440FX + PIIX, 1996)", ProductVersion: "pc-i440fx-7.2"},
		"thinkpad": {Source: SourceDMI, Arch: "amd64", SysVendor: "LENOVO", ProductName: "20KHCTO1WW",
			ProductVersion: "ThinkPad X1 Carbon 6th", ProductFamily: "ThinkPad X1 Carbon 6th",
			ProductSKU: "LENOVO_MT_20KH_BU_Think_FM_ThinkPad X1 Carbon 6th", BoardVendor: "LENOVO",
			BoardName: "20KHCTO1WW", BoardVersion: "pc-q35-7.2", Serial: "PF1ABCDE"},
	}
	for name, w := range want {
		t.Run(name, func(t *testing.T) {
			id, err := FromSMBIOS(readTestdata(t, "qemu-"+name+".ep"), readTestdata(t, "qemu-"+name+".dmi"))
			if err != nil {
				t.Fatal(err)
			}
			if id.String() != w.String() {
				t.Errorf("FromSMBIOS:\n got %s\nwant %s", id, w)
			}
			// The kernel's own view of the same tables must agree.
			fromSysfs, err := FromDMIDir(dmiDirFromCapture(t, "qemu-"+name+".dmiid"))
			if err != nil {
				t.Fatal(err)
			}
			if fromSysfs.String() != id.String() {
				t.Errorf("FromDMIDir disagrees with FromSMBIOS:\n dmi %s\n smb %s", fromSysfs, id)
			}
		})
	}
}

// TestEncoderAgainstDmidecode checks the test encoder, and our reading of
// its output, against dmidecode reading the same dump.
func TestEncoderAgainstDmidecode(t *testing.T) {
	testenv.RequireTool(t, "dmidecode", "dmidecode")
	uuid := [16]byte{0x0e, 0x6b, 0x4f, 0x8c, 0x2a, 0x1d, 0x3b, 0x4e, 0x9f, 0x5c, 0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f}
	for _, spec := range []smbiosSpec{
		{vendor: "Intel(R) Client Systems", product: "NUC8i5BEH", version: "J72693-303", serial: "G6BE12345678",
			family: "Intel NUC", sku: "BOXNUC8i5BEH", uuid: uuid, boardVendor: "Intel Corporation", boardName: "NUC8BEB", boardVersion: "J72688-303"},
		{sm3: true, major: 3, minor: 2, vendor: "LENOVO", product: "20XW0055GE", family: "ThinkPad X1 Carbon Gen 9", uuid: uuid},
		{major: 2, minor: 5, vendor: "Old", product: "Box", uuid: uuid}, // UUID not byte-swapped before 2.6
		{vendor: "QEMU", noBoard: true},
	} {
		ep, table := encodeSMBIOS(spec)
		dump := dumpFile(ep, table)
		f := filepath.Join(t.TempDir(), "dump.bin")
		if err := os.WriteFile(f, dump, 0o644); err != nil {
			t.Fatal(err)
		}
		id, err := FromSMBIOSDump(dump)
		if err != nil {
			t.Fatalf("FromSMBIOSDump(%+v): %v", spec, err)
		}
		id2, err := FromSMBIOS(ep, table)
		if err != nil || id2.String() != id.String() {
			t.Fatalf("FromSMBIOS = %v, %v; dump gave %v", id2, err, id)
		}
		for kw, got := range map[string]string{
			"system-manufacturer": id.SysVendor, "system-product-name": id.ProductName,
			"system-version": id.ProductVersion, "system-serial-number": id.Serial,
			"system-family": id.ProductFamily, "system-sku-number": id.ProductSKU,
			"system-uuid": id.SystemUUID, "baseboard-manufacturer": id.BoardVendor,
			"baseboard-product-name": id.BoardName, "baseboard-version": id.BoardVersion,
		} {
			out, err := exec.Command("dmidecode", "--from-dump", f, "-s", kw).Output()
			if err != nil {
				t.Fatalf("dmidecode -s %s: %v", kw, err)
			}
			w := strings.TrimSpace(string(out))
			if w == "Not Specified" || w == "Not Settable" {
				w = ""
			}
			if !strings.EqualFold(w, got) {
				t.Errorf("%s: dmidecode says %q, we read %q", kw, w, got)
			}
		}
	}
}

func TestSMBIOSEdgeCases(t *testing.T) {
	long := strings.Repeat("x", 1000)
	ep, table := encodeSMBIOS(smbiosSpec{vendor: long, product: "A\x01B\x7fC\xffD", serial: "  padded  "})
	id, err := FromSMBIOS(ep, table)
	if err != nil {
		t.Fatal(err)
	}
	if len(id.SysVendor) != MaxField {
		t.Errorf("long vendor kept %d bytes, want %d", len(id.SysVendor), MaxField)
	}
	// A long value is never cut silently: its tail shows in the digest.
	ep2, table2 := encodeSMBIOS(smbiosSpec{vendor: long[:999] + "y", product: "A\x01B\x7fC\xffD", serial: "  padded  "})
	id2, err := FromSMBIOS(ep2, table2)
	if err != nil {
		t.Fatal(err)
	}
	if id2.SysVendor == id.SysVendor || id2.String() == id.String() {
		t.Errorf("vendors differing in byte 1000 give the same identity %q", id.SysVendor)
	}
	if !strings.HasPrefix(id.SysVendor, long[:MaxField-65]+"~") {
		t.Errorf("long vendor %q: want its head, ~ and the digest", id.SysVendor)
	}
	if id.ProductName != "A?B?C?D" {
		t.Errorf("control characters: got %q", id.ProductName)
	}
	if id.Serial != "padded" {
		t.Errorf("serial %q not trimmed", id.Serial)
	}
	if id.ProductFamily != "" || id.SystemUUID != "" || id.DeviceID() != "padded" {
		t.Errorf("missing fields: family %q uuid %q device id %q", id.ProductFamily, id.SystemUUID, id.DeviceID())
	}

	// An SMBIOS 2.0 system structure: no UUID, no SKU, no family.
	ep, table = encodeSMBIOS(smbiosSpec{major: 2, minor: 0, vendor: "V", product: "P", sysLen: 8})
	if id, err := FromSMBIOS(ep, table); err != nil || id.SysVendor != "V" || id.ProductSKU != "" {
		t.Errorf("SMBIOS 2.0 table: %v %v", id, err)
	}

	bad := func(name string, ep, table []byte) {
		t.Helper()
		if id, err := FromSMBIOS(ep, table); err == nil {
			t.Errorf("%s: accepted as %v", name, id)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: multi-line error %q", name, err)
		}
	}
	ep, table = encodeSMBIOS(smbiosSpec{vendor: "V"})
	badEP := bytes.Clone(ep)
	badEP[4]++
	bad("bad entry point checksum", badEP, table)
	badEP = bytes.Clone(ep)
	badEP[0x15]++
	bad("bad intermediate checksum", badEP, table)
	bad("truncated table", ep, table[:len(table)-3])
	bad("truncated entry point", ep[:10], table)
	epN, tN := encodeSMBIOS(smbiosSpec{noSystem: true})
	bad("no system structure", epN, tN)
	bad("empty", nil, nil)
	ep3, t3 := encodeSMBIOS(smbiosSpec{sm3: true, major: 3, vendor: "V"})
	ep3[5]++
	bad("bad SMBIOS 3 checksum", ep3, t3)
	bad("too large", ep, make([]byte, MaxSMBIOSSize+1))

	// A structure claiming a string number past its strings.
	ep, table = encodeSMBIOS(smbiosSpec{vendor: "V", product: "P"})
	table[4+1] = 9 // product_name → string 9
	if id, err := FromSMBIOS(ep, table); err != nil || id.ProductName != "" {
		t.Errorf("bad string index: %v %v", id, err)
	}

	// Dumps whose table address points outside the file.
	dump := dumpFile(encodeSMBIOS(smbiosSpec{vendor: "V"}))
	binary.LittleEndian.PutUint32(dump[0x18:], 1<<20)
	if _, err := FromSMBIOSDump(dump); err == nil {
		t.Error("dump with a wild table address accepted")
	}
}

func TestFromDTB(t *testing.T) {
	id, err := FromDTB(readTestdata(t, "qemu-virt.dtb"))
	if err != nil {
		t.Fatal(err)
	}
	const want = `source=dt arch=arm64 compatible=["linux,dummy-virt"] model="linux,dummy-virt" serial=""`
	if id.String() != want {
		t.Errorf("String() = %s, want %s", id, want)
	}
	if id.DeviceID() != "" {
		t.Errorf("DeviceID = %q", id.DeviceID())
	}
}

// dtsBlob compiles device tree source with the real dtc.
func dtsBlob(t *testing.T, src string) []byte {
	t.Helper()
	testenv.RequireTool(t, "dtc", "device-tree-compiler")
	cmd := exec.Command("dtc", "-I", "dts", "-O", "dtb", "-q")
	cmd.Stdin = strings.NewReader(src)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dtc: %v", err)
	}
	return out
}

func TestDTBEdgeCases(t *testing.T) {
	many := make([]string, 20)
	for i := range many {
		many[i] = `"v,board` + string(rune('a'+i)) + `"`
	}
	b := dtsBlob(t, `/dts-v1/; / { compatible = `+strings.Join(many, ", ")+`, "", "ctl\x01x";
		model = "Board\tModel\x00\x00"; serial-number = "SN \"42\"  "; };`)
	id, err := FromDTB(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(id.Compatible) != MaxCompatible || id.Compatible[0] != "v,boarda" {
		t.Errorf("compatible = %q", id.Compatible)
	}
	if id.Model != "Board?Model" {
		t.Errorf("model = %q", id.Model)
	}
	if id.Serial != `SN "42"` || !strings.Contains(id.String(), `serial="SN \"42\""`) {
		t.Errorf("serial %q, String %s", id.Serial, id)
	}
	if id.DeviceID() != `SN "42"` {
		t.Errorf("DeviceID = %q", id.DeviceID())
	}

	if _, err := FromDTB(dtsBlob(t, `/dts-v1/; / { model = "no compatible"; };`)); err == nil {
		t.Error("tree without compatible accepted")
	}
	good := readTestdata(t, "qemu-virt.dtb")
	mut := func(name string, f func(b []byte) []byte) {
		t.Helper()
		b := f(bytes.Clone(good))
		if id, err := FromDTB(b); err == nil {
			t.Errorf("%s: accepted as %v", name, id)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: multi-line error", name)
		}
	}
	be := binary.BigEndian
	mut("bad magic", func(b []byte) []byte { b[0] = 0; return b })
	mut("truncated", func(b []byte) []byte { return b[:len(b)/2] })
	mut("header only", func(b []byte) []byte { return b[:40] })
	mut("totalsize too big", func(b []byte) []byte { be.PutUint32(b[4:], 1<<30); return b })
	mut("strings size too big", func(b []byte) []byte { be.PutUint32(b[32:], 0xfffffff0); return b })
	mut("struct size too big", func(b []byte) []byte { be.PutUint32(b[36:], 0xfffffff0); return b })
	mut("huge property length", func(b []byte) []byte {
		// The first property follows the root FDT_BEGIN_NODE and its empty name.
		off := be.Uint32(b[8:]) + 8
		if be.Uint32(b[off:]) != 3 {
			t.Fatalf("no property at %d", off)
		}
		be.PutUint32(b[off+4:], 0xffffff00)
		return b
	})
	mut("unknown token", func(b []byte) []byte { be.PutUint32(b[be.Uint32(b[8:]):], 7); return b })
}

func TestStringAndDeviceID(t *testing.T) {
	id := Identity{Source: SourceDMI, Arch: "amd64", SysVendor: `Q\E"MU`, Serial: "To Be Filled By O.E.M.", SystemUUID: "u-1"}
	const want = `source=dmi arch=amd64 sys_vendor="Q\\E\"MU" product_name="" product_version="" product_family="" product_sku="" board_vendor="" board_name="" board_version="" serial="To Be Filled By O.E.M." uuid="u-1"`
	if id.String() != want {
		t.Errorf("String:\n got %s\nwant %s", id, want)
	}
	if strings.Contains(id.Class(), "u-1") || strings.Contains(id.Class(), "serial") {
		t.Errorf("Class has per-device values: %s", id.Class())
	}
	if id.DeviceID() != "u-1" {
		t.Errorf("placeholder serial: DeviceID = %q", id.DeviceID())
	}
}

// TestRead lays out real captured data as a sysfs tree and reads it the
// way /init does.
func TestRead(t *testing.T) {
	put := func(root, rel string, data []byte) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	dtRoot := t.TempDir()
	put(dtRoot, "sys/firmware/fdt", readTestdata(t, "qemu-virt.dtb"))
	// A DMI source present too must not win over the device tree.
	put(dtRoot, "sys/class/dmi/id/sys_vendor", []byte("QEMU\n"))
	if id, err := Read(dtRoot); err != nil || id.Source != SourceDT || id.Arch != runtime.GOARCH {
		t.Errorf("device tree: %v, %v", id, err)
	}

	smRoot := t.TempDir()
	put(smRoot, "sys/firmware/dmi/tables/smbios_entry_point", readTestdata(t, "qemu-q35-e2e.ep"))
	put(smRoot, "sys/firmware/dmi/tables/DMI", readTestdata(t, "qemu-q35-e2e.dmi"))
	if id, err := Read(smRoot); err != nil || id.Serial != "SN-0001" {
		t.Errorf("SMBIOS tables: %v, %v", id, err)
	}

	dmiRoot := t.TempDir()
	put(dmiRoot, "sys/class/dmi/id/sys_vendor", []byte("QEMU\n"))
	put(dmiRoot, "sys/class/dmi/id/product_name", []byte("Standard PC (Q35 + ICH9, 2009)\n"))
	if id, err := Read(dmiRoot); err != nil || id.SysVendor != "QEMU" || id.Serial != "" {
		t.Errorf("DMI attributes: %v, %v", id, err)
	}

	// A broken device tree falls through to DMI, and is reported when
	// nothing else works.
	put(dmiRoot, "sys/firmware/fdt", []byte("garbage"))
	if id, err := Read(dmiRoot); err != nil || id.Source != SourceDMI {
		t.Errorf("broken fdt + DMI: %v, %v", id, err)
	}
	badRoot := t.TempDir()
	put(badRoot, "sys/firmware/fdt", []byte("garbage"))
	if _, err := Read(badRoot); err == nil || !strings.Contains(err.Error(), "fdt") {
		t.Errorf("broken fdt alone: %v", err)
	}
	if _, err := Read(t.TempDir()); err == nil {
		t.Error("empty root accepted")
	}
}

func FuzzFromDTB(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := FromDTB(b)
		if err == nil {
			checkSane(t, id)
		}
	})
}

func FuzzFromSMBIOS(f *testing.F) {
	f.Fuzz(func(t *testing.T, ep, table []byte) {
		id, err := FromSMBIOS(ep, table)
		if err == nil {
			checkSane(t, id)
		}
	})
}

func FuzzFromSMBIOSDump(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := FromSMBIOSDump(b)
		if err == nil {
			checkSane(t, id)
		}
	})
}

func checkSane(t *testing.T, id Identity) {
	t.Helper()
	s := id.String()
	if strings.ContainsAny(s, "\n\r\x00") {
		t.Fatalf("String() has control characters: %q", s)
	}
	if len(id.Compatible) > MaxCompatible {
		t.Fatalf("%d compatible entries", len(id.Compatible))
	}
	for _, v := range append([]string{id.Model, id.SysVendor, id.ProductName, id.Serial, id.BoardName}, id.Compatible...) {
		if len(v) > MaxField {
			t.Fatalf("field of %d bytes", len(v))
		}
	}
}
