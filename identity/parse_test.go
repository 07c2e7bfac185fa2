package identity

import (
	"strings"
	"testing"
)

func TestParseRoundTrip(t *testing.T) {
	for _, id := range []Identity{
		{Source: SourceDMI, Arch: "amd64", SysVendor: "QEMU", ProductName: `Standard "PC"`, ProductVersion: `a\b`,
			Serial: "SN1", SystemUUID: "8a1c2f0e-0000-4000-8000-000000000001"},
		{Source: SourceDT, Arch: "arm64", Compatible: []string{"pine64,pinebook-pro", "rockchip,rk3399"}, Model: "Pinebook Pro", Serial: "abc"},
		{Source: SourceDT, Arch: "arm64"},
		{Arch: "amd64"}, // identity.Read failed: /init boots with the arch alone
	} {
		s := id.String()
		got, err := Parse(s)
		if err != nil {
			t.Errorf("Parse(%q): %v", s, err)
			continue
		}
		if got.String() != s || got.DeviceID() != id.DeviceID() {
			t.Errorf("Parse(%q) = %+v", s, got)
		}
	}
}

func TestParseRejects(t *testing.T) {
	good := Identity{Source: SourceDMI, Arch: "amd64", Serial: "SN1"}.String()
	for _, s := range []string{
		"", "bogus", "source=dmi", "source=dmi arch=amd64",
		strings.Replace(good, ` uuid=""`, "", 1),     // a field missing
		good + " extra",                              // trailing text
		strings.Replace(good, "serial", "SERIAL", 1), // wrong key
		strings.Replace(good, `"SN1"`, `"SN\x01"`, 1),
		strings.Replace(good, "source=dmi", "source=acpi", 1),
		strings.Replace(good, `"SN1"`, `"SN1`, 1),
		`source=dt arch=arm64 compatible=["a",] model="" serial=""`,
		`source=dt arch=arm64 compatible=["a" model="" serial=""`,
	} {
		if id, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) accepted: %+v", s, id)
		}
	}
}

// TestParseDeviceIDPlaceholder: the placeholder-serial rule applies to a
// parsed identity exactly as to a read one.
func TestParseDeviceIDPlaceholder(t *testing.T) {
	s := Identity{Source: SourceDMI, Arch: "amd64", Serial: "To Be Filled By O.E.M.", SystemUUID: "u-1"}.String()
	id, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	if id.DeviceID() != "u-1" {
		t.Errorf("DeviceID %q, want the UUID", id.DeviceID())
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Identity{Source: SourceDMI, Arch: "amd64", Serial: "SN1"}.String())
	f.Add(Identity{Source: SourceDT, Arch: "arm64", Compatible: []string{"a", `b"c`}}.String())
	f.Fuzz(func(t *testing.T, s string) {
		id, err := Parse(s)
		if err == nil && id.String() != s {
			t.Fatalf("Parse(%q) accepted a non-canonical string", s)
		}
	})
}
