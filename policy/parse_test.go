package policy

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func TestParseSample(t *testing.T) {
	p, err := Parse(readTestdata(t, "sample-policy.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != 7 || p.PCRIndex() != 13 || len(p.Production.Roots) != 2 {
		t.Errorf("got %+v", p)
	}
	if !p.Covers("qemu-x86_64") || !p.Covers("qemu-aarch64-virt") || p.Covers("rpi4") || p.Covers("") {
		t.Error("Covers is wrong")
	}
	if p.Production.RollbackNVIndex != 0x01504d43 || !p.Production.LocksModules() || !p.Production.RequiresTPM() {
		t.Errorf("production: %+v", p.Production)
	}
	if !p.Development.Allowed() || p.Development.Upper != UpperTmpfs || !p.Development.RescueShell {
		t.Errorf("development: %+v", p.Development)
	}
}

func TestParseDefaults(t *testing.T) {
	p, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	r := p.Production.Roots[0]
	if r.HashAlgorithm != "sha256" || p.Production.VerityError != VerityRestart || p.Development.Upper != UpperTmpfs {
		t.Errorf("defaults not filled: %+v", p)
	}
	if p.PCRIndex() != DefaultPCR || !p.Production.LocksModules() || !p.Production.RequiresTPM() || !p.Development.VerifiesLower() {
		t.Error("accessor defaults wrong")
	}
	if p.Development.Allowed() {
		t.Error("development must default to never")
	}
}

// TestParseErrors: every rejection names its field.
func TestParseErrors(t *testing.T) {
	hash64 := strings.Repeat("ab", 32)
	root := "[[production.root]]\nroot_hash = \"" + hash64 + "\"\ndata_blocks = 8\n"
	head := "format = 1\nversion = 1\nboards = [\"qemu-x86_64\"]\n"
	for _, tc := range []struct{ name, doc, want string }{
		{"empty", "", "format"},
		{"no format", "version = 1\n", "field format: missing"},
		{"format 2", "format = 2\n", "field format: 2 is not supported"},
		{"no version", "format = 1\nboards=[\"a\"]\n" + root, "field version: missing"},
		{"negative version", "format = 1\nversion = -1\nboards=[\"a\"]\n" + root, "field version: -1 is negative"},
		{"version too big", "format = 1\nversion = 18446744073709551615\n", "version"},
		{"no boards", "format = 1\nversion = 1\n" + root, "field boards: missing"},
		{"bad board", "format = 1\nversion = 1\nboards=[\"Qemu\"]\n" + root, "field boards[0]"},
		{"board trailing dash", "format = 1\nversion = 1\nboards=[\"a-\"]\n" + root, "field boards[0]"},
		{"generic in boards", "format = 1\nversion = 1\nboards=[\"qemu-x86_64\", \"generic-x86_64\"]\n" + root, "field boards[1]: \"generic-x86_64\" is the fallback"},
		{"generic in boards, unknown allowed", "format = 1\nversion = 1\nallow_unknown_boards = true\nboards=[\"generic-aarch64\"]\n" + root, "field boards[0]: \"generic-aarch64\" is the fallback"},
		{"dup board", "format = 1\nversion = 1\nboards=[\"a\",\"a\"]\n" + root, "field boards[1]: duplicate"},
		{"board wrong type", "format = 1\nversion = 1\nboards=[1]\n" + root, `"boards"`},
		{"unknown top", head + "colour = 1\n" + root, "unknown field colour"},
		{"unknown nested", head + root + "rot_hash = \"x\"\n", "unknown field production.root.rot_hash"},
		{"unknown table", head + root + "[debug]\nx=1\n", "unknown field debug"},
		{"duplicate key", head + "version = 2\n" + root, "already been defined"},
		{"duplicate table", head + "[production]\n[production]\n" + root, "already been defined"},
		{"wrong type", head + "pcr = \"13\"\n" + root, `"pcr"`},
		{"pcr 0", head + "pcr = 0\n" + root, "field pcr: 0 is a firmware PCR"},
		{"pcr 7", head + "pcr = 7\n" + root, "field pcr: 7"},
		{"pcr 24", head + "pcr = 24\n" + root, "field pcr: 24"},
		{"no root", head, "field production.root: missing"},
		{"no data_blocks", head + "[[production.root]]\nroot_hash = \"" + hash64 + "\"\n", "field production.root[0].data_blocks: missing"},
		{"data_blocks 0", head + "[[production.root]]\nroot_hash = \"" + hash64 + "\"\ndata_blocks = 0\n", "field production.root[0].data_blocks: missing or 0"},
		{"second root without data_blocks", head + root + "[[production.root]]\nroot_hash = \"" + strings.Repeat("cd", 32) + "\"\n", "field production.root[1].data_blocks"},
		{"short hash", head + "[[production.root]]\nroot_hash = \"abcd\"\n", "field production.root[0].root_hash"},
		{"upper hash", head + "[[production.root]]\nroot_hash = \"" + strings.ToUpper(hash64) + "\"\n", "root_hash: must be 64 lowercase"},
		{"sha512 len", head + "[[production.root]]\nhash_algorithm = \"sha512\"\nroot_hash = \"" + hash64 + "\"\n", "must be 128 lowercase hex digits for sha512"},
		{"bad alg", head + "[[production.root]]\nhash_algorithm = \"md5\"\nroot_hash = \"" + hash64 + "\"\n", "hash_algorithm"},
		{"dup hash", head + root + root, "field production.root[1].root_hash: duplicate"},
		{"odd salt", head + root + "salt = \"abc\"\n", "field production.root[0].salt"},
		{"half labels", head + root + "data_partlabel = \"r\"\n", "data_partlabel and hash_partlabel"},
		{"same labels", head + root + "data_partlabel = \"r\"\nhash_partlabel = \"r\"\n", "must differ"},
		{"bad label", head + root + "data_partlabel = \"r o\"\nhash_partlabel = \"h\"\n", "data_partlabel"},
		{"verity_error", head + "[production]\nverity_error = \"ignore\"\n" + root, "field production.verity_error"},
		{"nv index", head + "[production]\nrollback_nv_index = 0x81000001\n" + root, "field production.rollback_nv_index"},
		{"nv index 33 bits", head + "[production]\nrollback_nv_index = 0x101500016\n" + root, "rollback_nv_index"},
		{"bool type", head + "[production]\nlock_modules = 1\n" + root, `production.lock_modules`},
		{"dev board uncovered", head + root + "[development]\nallow_boards = [\"rpi4\"]\n", "field development.allow_boards[0]: board \"rpi4\" is not covered"},
		{"dev device uncovered", head + root + "[[development.allow_devices]]\nboard = \"rpi4\"\ndevice_id = \"1\"\n", "development.allow_devices[0].board"},
		{"dev device empty id", head + root + "[[development.allow_devices]]\nboard = \"qemu-x86_64\"\ndevice_id = \"\"\n", "development.allow_devices[0].device_id: empty"},
		{"dev device ctrl", head + root + "[[development.allow_devices]]\nboard = \"qemu-x86_64\"\ndevice_id = \"a\\tb\"\n", "device_id: byte 0x09"},
		{"dev device dup", head + root + "[[development.allow_devices]]\nboard = \"qemu-x86_64\"\ndevice_id = \"1\"\n[[development.allow_devices]]\nboard = \"qemu-x86_64\"\ndevice_id = \"1\"\n", "development.allow_devices[1]: duplicate"},
		{"upper", head + root + "[development]\nupper = \"disk\"\n", "field development.upper"},
		{"partition no label", head + root + "[development]\nupper = \"partition\"\n", "development.upper_partlabel: required"},
		{"tmpfs with label", head + root + "[development]\nupper_partlabel = \"x\"\n", "development.upper_partlabel: only valid"},
		{"rescue_timeout without shell", head + root + "[development]\nrescue_timeout = 60\n", "field development.rescue_timeout: set without rescue_shell = true"},
		{"rescue_timeout 0", head + root + "[development]\nrescue_shell = true\nrescue_timeout = 0\n", "field development.rescue_timeout: 0 seconds is outside 10-3600 (omit it for the default 300)"},
		{"rescue_timeout 9", head + root + "[development]\nrescue_shell = true\nrescue_timeout = 9\n", "field development.rescue_timeout: 9 seconds is outside 10-3600"},
		{"rescue_timeout 3601", head + root + "[development]\nrescue_shell = true\nrescue_timeout = 3601\n", "field development.rescue_timeout: 3601 seconds is outside 10-3600"},
		{"rescue_timeout negative", head + root + "[development]\nrescue_shell = true\nrescue_timeout = -5\n", "field development.rescue_timeout: -5 is negative"},
		{"rescue_timeout string", head + root + "[development]\nrescue_shell = true\nrescue_timeout = \"5m\"\n", "rescue_timeout"},
		{"too big", head + root + "#" + strings.Repeat("x", MaxPolicySize), "more than the limit"},
		{"nul", head + root + "# \x00\n", "NUL"},
		{"not utf8", head + root + "# \xff\n", "UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.doc)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	hash := strings.Repeat("0f", 64)
	for _, doc := range []string{
		minimal,
		minimal + "[production]\n",
		"format = 1\nversion = 0\nboards = [\"qemu-x86_64\"]\nallow_unknown_boards = true\npcr = 15\n[[production.root]]\nhash_algorithm = \"sha512\"\nroot_hash = \"" + hash + "\"\nsalt = \"00ff\"\ndata_blocks = 2048\n[development]\nallow_boards = [\"generic-aarch64\"]\nupper = \"partition\"\nupper_partlabel = \"dev-upper\"\ncreate_upper = true\n",
		minimal + "[development]\nrescue_shell = true\nrescue_timeout = 10\n",
		minimal + "[development]\nrescue_shell = true\nrescue_timeout = 3600\n",
	} {
		if _, err := Parse([]byte(doc)); err != nil {
			t.Errorf("%v\n%s", err, doc)
		}
	}
}

// TestRescueWait: rescue_timeout is seconds, 300 when left out.
func TestRescueWait(t *testing.T) {
	for _, tc := range []struct {
		dev  string
		want time.Duration
	}{
		{"", 5 * time.Minute},
		{"rescue_shell = true\n", 5 * time.Minute},
		{"rescue_shell = true\nrescue_timeout = 10\n", 10 * time.Second},
		{"rescue_shell = true\nrescue_timeout = 3600\n", time.Hour},
	} {
		p, err := Parse([]byte(minimal + "[development]\n" + tc.dev))
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Development.RescueWait(); got != tc.want {
			t.Errorf("%q: RescueWait %v, want %v", tc.dev, got, tc.want)
		}
		n := p.Normalized().Development
		if n.RescueShell && n.RescueTimeout != int(tc.want/time.Second) {
			t.Errorf("%q: normalised rescue_timeout %d", tc.dev, n.RescueTimeout)
		}
		if !n.RescueShell && n.RescueTimeout != 0 {
			t.Errorf("%q: normalised policy without a shell has rescue_timeout %d", tc.dev, n.RescueTimeout)
		}
	}
}

// TestNormalizedRoundTrip: `mcinit policy show` output parses back equal.
func TestNormalizedRoundTrip(t *testing.T) {
	for _, doc := range [][]byte{readTestdata(t, "sample-policy.toml"), []byte(minimal)} {
		p, err := Parse(doc)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := toml.NewEncoder(&buf).Encode(p.Normalized()); err != nil {
			t.Fatal(err)
		}
		q, err := Parse(buf.Bytes())
		if err != nil {
			t.Fatalf("normalised output does not parse: %v\n%s", err, buf.Bytes())
		}
		if !reflect.DeepEqual(p.Normalized(), q.Normalized()) {
			t.Errorf("round trip differs:\n%+v\n%+v", p.Normalized(), q.Normalized())
		}
	}
}

// TestParseDeepNesting: the TOML decoder is superlinear in nesting depth
// (30,000 nested arrays took 90 s before this check), so deep documents are
// rejected before decoding.
func TestParseDeepNesting(t *testing.T) {
	for _, doc := range []string{
		"a = " + strings.Repeat("[", 30000) + strings.Repeat("]", 30000) + "\n",
		"a = " + strings.Repeat("{b=", 15000) + "1" + strings.Repeat("}", 15000) + "\n",
		strings.Repeat("a.", 20000) + "b = 1\n",
		"[" + strings.Repeat("a.", 20000) + "b]\n",
	} {
		if _, err := Parse([]byte(doc)); err == nil || !strings.Contains(err.Error(), "levels deep") {
			t.Errorf("%.20q...: %v", doc, err)
		}
	}
	// Brackets, braces and dots inside strings and comments do not count.
	doc := minimal + "# [[[[[[[[[[[[ ............\n[development]\nupper = \"tmpfs\" # {{{{{{{{{{{{{\n" +
		"[[development.allow_devices]]\nboard = \"qemu-x86_64\"\ndevice_id = \"[[[[[[[[[[[[...........\\\"[[[[\"\n"
	if _, err := Parse([]byte(doc)); err != nil {
		t.Error(err)
	}
}

// TestCoversGeneric: a generic board means "unknown device" and nothing
// else: only allow_unknown_boards admits it, even in a Policy built by hand
// with the name in Boards (issue 11 item 6).
func TestCoversGeneric(t *testing.T) {
	p := &Policy{Boards: []string{"qemu-x86_64", "generic-x86_64"}}
	if p.Covers("generic-x86_64") {
		t.Error("generic-x86_64 listed in boards is covered without allow_unknown_boards")
	}
	p.AllowUnknownBoards = true
	if !p.Covers("generic-x86_64") || !p.Covers("generic-aarch64") || p.Covers("rpi4") {
		t.Error("allow_unknown_boards: wrong coverage")
	}
}
