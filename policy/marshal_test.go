package policy

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// roundTrip checks the marshaller's property on one accepted document:
// Parse(Marshal(p)) equals p, and marshalling that again gives the same
// bytes.
func roundTrip(t testing.TB, doc []byte) {
	t.Helper()
	p, err := Parse(doc)
	if err != nil {
		return
	}
	out, err := Marshal(p)
	if err != nil {
		t.Fatalf("Marshal of an accepted policy: %v\n%s", err, doc)
	}
	q, err := Parse(out)
	if err != nil {
		t.Fatalf("Marshal output does not parse: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(p, q) {
		t.Fatalf("round trip differs:\n%#v\n%#v\n%s", p, q, out)
	}
	again, err := Marshal(q)
	if err != nil || !bytes.Equal(out, again) {
		t.Fatalf("Marshal is not stable (%v):\n%s\n%s", err, out, again)
	}
	n, err := Marshal(p.Normalized())
	if err != nil {
		t.Fatalf("Marshal(Normalized): %v", err)
	}
	nq, err := Parse(n)
	if err != nil || !reflect.DeepEqual(nq.Normalized(), p.Normalized()) {
		t.Fatalf("normalised output does not parse back equal (%v):\n%s", err, n)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	docs := [][]byte{readTestdata(t, "sample-policy.toml"), []byte(minimal)}
	hash := strings.Repeat("0f", 64)
	for _, d := range []string{
		minimal + "[production]\n",
		"format = 1\nversion = 0\nboards = [\"qemu-x86_64\"]\nallow_unknown_boards = true\npcr = 15\n[[production.root]]\nhash_algorithm = \"sha512\"\nroot_hash = \"" + hash + "\"\nsalt = \"00ff\"\ndata_blocks = 2048\n[development]\nallow_boards = [\"generic-aarch64\"]\nupper = \"partition\"\nupper_partlabel = \"dev-upper\"\ncreate_upper = true\n",
		minimal + "[development]\nallow_boards = []\nallow_devices = []\nrescue_shell = true\nrescue_timeout = 60\nverify_lower = false\n",
		minimal + "[[development.allow_devices]]\nboard = \"qemu-x86_64\"\ndevice_id = \"a \\\"quoted\\\" \\\\ id\"\n",
		strings.Replace(minimal, "[[production.root]]\n", "[[production.root]]\nname = \"a \\\" \\\\\"\n", 1),
	} {
		docs = append(docs, []byte(d))
	}
	for _, d := range docs {
		if _, err := Parse(d); err != nil {
			t.Fatalf("test document does not parse: %v\n%s", err, d)
		}
		roundTrip(t, d)
	}
}

// TestMarshalLayout pins the canonical bytes: fixtures and signed test
// policies depend on them being reproducible.
func TestMarshalLayout(t *testing.T) {
	yes, no := true, false
	p := &Policy{
		Format: FormatVersion, Version: 3, Boards: []string{"qemu-x86_64", "qemu-aarch64-virt"}, PCR: 13,
		Production: Production{
			VerityError: VerityEIO, LockModules: &yes, TPMRequired: &no, RollbackNVIndex: 0x01504d43,
			Roots: []Root{
				{Name: "A", RootHash: strings.Repeat("ab", 32), DataBlocks: 8},
				{Name: "B", RootHash: strings.Repeat("cd", 32), HashAlgorithm: "sha256", DataBlocks: 9, DataPartLabel: "b", HashPartLabel: "b-verity"},
			},
		},
		Development: Development{
			AllowBoards: []string{}, AllowGrants: true, Upper: UpperTmpfs, RescueShell: true,
			AllowDevices: []Device{{Board: "qemu-x86_64", DeviceID: "MCDEV-0001"}},
		},
	}
	want := `format = 1
version = 3
boards = ["qemu-x86_64", "qemu-aarch64-virt"]
pcr = 13

[production]
verity_error = "eio"
lock_modules = true
tpm_required = false
rollback_nv_index = 0x01504d43

[[production.root]]
name = "A"
root_hash = "` + strings.Repeat("ab", 32) + `"
data_blocks = 8

[[production.root]]
name = "B"
root_hash = "` + strings.Repeat("cd", 32) + `"
hash_algorithm = "sha256"
data_blocks = 9
data_partlabel = "b"
hash_partlabel = "b-verity"

[development]
allow_boards = []
allow_grants = true
upper = "tmpfs"
rescue_shell = true

[[development.allow_devices]]
board = "qemu-x86_64"
device_id = "MCDEV-0001"
`
	got, err := Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if _, err := Parse(got); err != nil {
		t.Error(err)
	}
}

// TestMarshalEveryField: a policy with every field set marshals to a
// document that decodes back to it. The completeness check fails when a
// field is added to the schema and not here, and then the comparison fails
// until Marshal writes it.
func TestMarshalEveryField(t *testing.T) {
	yes, no := true, false
	p := &Policy{
		Format: 1, Version: 2, Boards: []string{"a"}, AllowUnknownBoards: true, PCR: 14,
		Production: Production{
			Roots:       []Root{{Name: "n", RootHash: "h", HashAlgorithm: "sha512", Salt: "00", DataBlocks: 5, DataPartLabel: "d", HashPartLabel: "e"}},
			VerityError: VerityPanic, LockModules: &no, TPMRequired: &yes, RollbackNVIndex: 0x01000001,
		},
		Development: Development{
			AllowBoards: []string{"a"}, AllowDevices: []Device{{Board: "a", DeviceID: "x"}}, AllowGrants: true,
			Upper: UpperPartition, UpperPartLabel: "u", CreateUpper: true, VerifyLower: &no, RescueShell: true, RescueTimeout: 60,
		},
	}
	if path := zeroField(reflect.ValueOf(*p), "Policy"); path != "" {
		t.Fatalf("%s is not set in this test; set it so Marshal is checked to write it", path)
	}
	out, err := Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var q Policy
	md, err := toml.Decode(string(out), &q)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if und := md.Undecoded(); len(und) > 0 {
		t.Errorf("undecoded keys %v", und)
	}
	if !reflect.DeepEqual(*p, q) {
		t.Errorf("decoded differs:\n%#v\n%#v\n%s", *p, q, out)
	}

	g := &Grant{Format: 1, Board: "a", DeviceID: "x", MinPolicyVersion: new(uint64), MaxPolicyVersion: new(uint64), NotAfter: "2027-01-31T00:00:00Z"}
	*g.MinPolicyVersion, *g.MaxPolicyVersion = 1, 2
	if path := zeroField(reflect.ValueOf(*g), "Grant"); path != "Grant.SignedBy" {
		t.Fatalf("Grant field %q is not set in this test", path)
	}
	gb, err := MarshalGrant(g)
	if err != nil {
		t.Fatal(err)
	}
	var gq Grant
	if _, err := toml.Decode(string(gb), &gq); err != nil || !reflect.DeepEqual(*g, gq) {
		t.Errorf("grant decoded differs (%v):\n%#v\n%#v\n%s", err, *g, gq, gb)
	}
}

// zeroField returns the path of the first zero field of a struct value
// (recursing into structs and slice elements), or "".
func zeroField(v reflect.Value, path string) string {
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if p := zeroField(v.Field(i), path+"."+v.Type().Field(i).Name); p != "" {
				return p
			}
		}
		return ""
	case reflect.Slice:
		if v.Len() == 0 {
			return path
		}
		for i := 0; i < v.Len(); i++ {
			if p := zeroField(v.Index(i), path); p != "" {
				return p
			}
		}
		return ""
	}
	if v.IsZero() {
		return path
	}
	return ""
}

func TestMarshalStrings(t *testing.T) {
	for _, s := range []string{`a"b`, `a\b`, "a\nb", "a\tb", "a\x01b\x7f", "ü€😀", "'''", `"""`} {
		p := &Policy{Format: 1, Boards: []string{s}}
		out, err := Marshal(p)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		var q Policy
		if _, err := toml.Decode(string(out), &q); err != nil || len(q.Boards) != 1 || q.Boards[0] != s {
			t.Errorf("%q: decoded %q (%v) from\n%s", s, q.Boards, err, out)
		}
		if bytes.Count(out, []byte("\n")) != 3 {
			t.Errorf("%q: a string spans lines:\n%s", s, out)
		}
	}
	if _, err := Marshal(&Policy{Format: 1, Boards: []string{"a\xffb"}}); err == nil || !strings.Contains(err.Error(), "field boards[0]: not valid UTF-8") {
		t.Errorf("invalid UTF-8: %v", err)
	}
	if _, err := Marshal(&Policy{Format: 1, Version: math.MaxInt64 + 1}); err == nil || !strings.Contains(err.Error(), "field version") {
		t.Errorf("version beyond int64: %v", err)
	}
	if _, err := MarshalGrant(&Grant{Format: 1, MaxPolicyVersion: new(uint64), NotAfter: "\xff"}); err == nil {
		t.Error("grant: invalid UTF-8 accepted")
	}
}

func TestMarshalGrantRoundTrip(t *testing.T) {
	for _, doc := range []string{sampleGrant, sampleGrant + "not_after = \"2027-01-31T00:00:00+01:00\"\n", "format = 1\nboard = \"b\"\ndevice_id = \"x \\\"y\\\"\"\nmax_policy_version = 0\n"} {
		grantRoundTrip(t, []byte(doc))
	}
	g, _ := ParseGrant([]byte(sampleGrant))
	out, err := MarshalGrant(g)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != sampleGrant {
		t.Errorf("got\n%s\nwant\n%s", out, sampleGrant)
	}
}

func grantRoundTrip(t testing.TB, doc []byte) {
	t.Helper()
	g, err := ParseGrant(doc)
	if err != nil {
		return
	}
	out, err := MarshalGrant(g)
	if err != nil {
		t.Fatalf("MarshalGrant of an accepted grant: %v", err)
	}
	h, err := ParseGrant(out)
	if err != nil || !reflect.DeepEqual(g, h) {
		t.Fatalf("grant round trip differs (%v):\n%#v\n%#v\n%s", err, g, h, out)
	}
}

func TestMarshalRoot(t *testing.T) {
	r := Root{RootHash: strings.Repeat("ab", 32), Salt: "00ff", DataBlocks: 7}
	got, err := MarshalRoot(r)
	if err != nil {
		t.Fatal(err)
	}
	want := "[[production.root]]\nroot_hash = \"" + r.RootHash + "\"\nsalt = \"00ff\"\ndata_blocks = 7\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// Pasted under a policy head, it is that policy's root.
	p, err := Parse(append([]byte("format = 1\nversion = 1\nboards = [\"qemu-x86_64\"]\n\n"), got...))
	if err != nil {
		t.Fatal(err)
	}
	if r.HashAlgorithm = "sha256"; !reflect.DeepEqual(p.Production.Roots, []Root{r}) {
		t.Errorf("pasted root %+v", p.Production.Roots)
	}
}
