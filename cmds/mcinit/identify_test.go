package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/identity"
)

func identifyStdout(t *testing.T, args ...string) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	runErr := runIdentify(args)
	os.Stdout = old
	w.Close()
	b, _ := io.ReadAll(r)
	return string(b), runErr
}

const idTestdata = "../../identity/testdata/"

func TestIdentifyVerb(t *testing.T) {
	out, err := identifyStdout(t, "--dtb", idTestdata+"qemu-virt.dtb")
	if err != nil || !strings.Contains(out, `compatible=["linux,dummy-virt"]`) || !strings.Contains(out, "board:           qemu-aarch64-virt\n") {
		t.Errorf("--dtb: %v\n%s", err, out)
	}

	// The three SMBIOS shapes: tables directory, dmidecode dump, DMI attributes.
	ep, _ := os.ReadFile(idTestdata + "qemu-q35-e2e.ep")
	dmi, _ := os.ReadFile(idTestdata + "qemu-q35-e2e.dmi")
	tables := t.TempDir()
	os.WriteFile(filepath.Join(tables, "smbios_entry_point"), ep, 0o644)
	os.WriteFile(filepath.Join(tables, "DMI"), dmi, 0o644)
	attrs := t.TempDir()
	os.WriteFile(filepath.Join(attrs, "sys_vendor"), []byte("QEMU\n"), 0o644)
	os.WriteFile(filepath.Join(attrs, "product_serial"), []byte("SN-0001\n"), 0o644)
	dump := filepath.Join(t.TempDir(), "dump.bin")
	d := make([]byte, 0x20+len(dmi))
	copy(d, ep)
	copy(d[0x20:], dmi)
	d[0x18], d[0x19], d[0x1a], d[0x1b] = 0x20, 0, 0, 0
	d[0x15], d[4] = 0, 0
	d[0x15] = sumTo0(d[0x10:0x1f])
	d[4] = sumTo0(d[:0x1f])
	os.WriteFile(dump, d, 0o644)
	for _, p := range []string{tables, attrs, dump} {
		out, err := identifyStdout(t, "--smbios", p)
		if err != nil || !strings.Contains(out, "device id:       SN-0001\n") || !strings.Contains(out, "board:           qemu-x86_64\n") {
			t.Errorf("--smbios %s: %v\n%s", p, err, out)
		}
	}

	// Exit codes: no matching board 3, usage 2, unreadable input 1.
	os.WriteFile(filepath.Join(attrs, "sys_vendor"), []byte("Dell Inc.\n"), 0o644)
	_, err = identifyStdout(t, "--smbios", attrs)
	if exitCode("identify", err) != exitRejected {
		t.Errorf("unknown board: %v", err)
	}
	if out, err := identifyStdout(t, "--smbios", attrs, "--allow-generic"); err != nil || !strings.Contains(out, "generic-x86_64") {
		t.Errorf("--allow-generic: %v %s", err, out)
	}
	_, err = identifyStdout(t, "--dtb", "a", "--smbios", "b")
	if exitCode("identify", err) != exitUsage {
		t.Errorf("both sources: %v", err)
	}
	_, err = identifyStdout(t, "--dtb", idTestdata+"qemu-q35-e2e.dmi")
	if exitCode("identify", err) != exitError || !strings.Contains(err.Error(), "device tree") {
		t.Errorf("not a device tree: %v", err)
	}
}

func sumTo0(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return -s
}

// TestIdentifyFormats: -format line prints the canonical identity alone
// (what /init measures, so `predict -identity "$(mcinit identify -format
// line …)"` predicts the boot), -format json its parts and the board.
func TestIdentifyFormats(t *testing.T) {
	ep, _ := os.ReadFile(idTestdata + "qemu-q35-e2e.ep")
	dmi, _ := os.ReadFile(idTestdata + "qemu-q35-e2e.dmi")
	want, err := identity.FromSMBIOS(ep, dmi)
	if err != nil {
		t.Fatal(err)
	}
	tables := t.TempDir()
	os.WriteFile(filepath.Join(tables, "smbios_entry_point"), ep, 0o644)
	os.WriteFile(filepath.Join(tables, "DMI"), dmi, 0o644)

	line, err := identifyStdout(t, "-smbios", tables, "-format", "line")
	if err != nil || line != want.String()+"\n" {
		t.Errorf("-format line: %v\n%q\nwant %q", err, line, want.String())
	}
	if !strings.Contains(line, "product_family=") || !strings.Contains(line, "uuid=") {
		t.Errorf("-format line lacks fields: %s", line)
	}
	table, _ := identifyStdout(t, "-smbios", tables)
	if !strings.Contains(table, "identity:        "+want.String()+"\n") {
		t.Errorf("table and line disagree:\n%s", table)
	}

	js, err := identifyStdout(t, "-smbios", tables, "-format", "json")
	var got identifyOutput
	if err != nil || json.Unmarshal([]byte(js), &got) != nil {
		t.Fatalf("-format json: %v\n%s", err, js)
	}
	if got.Identity != want.String() || got.Board != "qemu-x86_64" || got.Serial != want.Serial ||
		got.DeviceID != want.DeviceID() || got.Class != want.Class() || got.SysVendor != want.SysVendor {
		t.Errorf("-format json: %+v", got)
	}

	if _, err := identifyStdout(t, "-smbios", tables, "-format", "yaml"); exitCode("identify", err) != exitUsage {
		t.Errorf("-format yaml: %v", err)
	}
}
