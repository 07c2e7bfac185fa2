package grantpart

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sample() []Entry {
	return []Entry{
		{Name: "sn-0042.toml", Grant: []byte("format = 1\nboard = \"qemu-x86_64\"\n"), Sig: []byte("ed25519 abc sig\n")},
		{Name: "a.toml", Grant: []byte("g2"), Sig: []byte("s2")},
	}
}

func TestRoundTrip(t *testing.T) {
	b, err := Build(sample())
	if err != nil {
		t.Fatal(err)
	}
	// Order of the input does not matter: entries are sorted by name.
	rev := sample()
	rev[0], rev[1] = rev[1], rev[0]
	b2, err := Build(rev)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatal("container depends on the order of the entries")
	}
	// Trailing bytes (the rest of the partition) are ignored.
	got, err := Parse(append(append([]byte(nil), b...), make([]byte, 4096)...))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "a.toml" || got[1].Name != "sn-0042.toml" ||
		!bytes.Equal(got[1].Grant, sample()[0].Grant) || !bytes.Equal(got[1].Sig, sample()[0].Sig) {
		t.Fatalf("round trip: %+v", got)
	}
	empty, err := Build(nil)
	if err != nil {
		t.Fatal(err)
	}
	if es, err := Parse(empty); err != nil || len(es) != 0 {
		t.Fatalf("empty container: %v %v", es, err)
	}
}

// reseal fixes the checksum after a test edits a container, so the check
// under test is the one that fails.
func reseal(b []byte) []byte {
	n := headerLen + int(binary.LittleEndian.Uint32(b[12:]))
	sum := sha256.Sum256(b[:n])
	return append(b[:n:n], sum[:]...)
}

func TestParseRejects(t *testing.T) {
	good, err := Build(sample())
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"short garbage", []byte("abc"), "too short"},
		{"garbage", []byte("#!/bin/sh\nrm -rf /\n"), `not a grants container (magic "#!/bin/s")`},
		{"version", edit(func(b []byte) []byte { b[8] = 2; return reseal(b) }), "version 2 is not supported"},
		{"too many", edit(func(b []byte) []byte { binary.LittleEndian.PutUint16(b[10:], MaxEntries+1); return b }), "65 entries, more than the limit of 64"},
		{"huge body", edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[12:], 0xffffffff); return b }), "more than the limit of 1048576"},
		{"cut", good[:len(good)-1], "only"},
		{"flipped byte", edit(func(b []byte) []byte { b[headerLen+7] ^= 1; return b }), "checksum mismatch"},
		{"count above entries", edit(func(b []byte) []byte { b[10]++; return reseal(b) }), "entry 3: truncated header"},
		{"count below entries", edit(func(b []byte) []byte { b[10]--; return reseal(b) }), "bytes after the last entry"},
		{"entry overrun", edit(func(b []byte) []byte { b[headerLen+1] = 0xff; b[headerLen+2] = 0x0f; return reseal(b) }), "entry 1: 4"},
		{"bad name", edit(func(b []byte) []byte { b[headerLen+entryHdr] = '/'; return reseal(b) }), `name "/.toml"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.data)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestDuplicateName(t *testing.T) {
	es := sample()
	es[1].Name = es[0].Name
	if _, err := Build(es); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Fatalf("Build: %v", err)
	}
	// Hand-made: two entries named "a.toml".
	var body []byte
	for i := 0; i < 2; i++ {
		body = append(body, 6, 1, 0, 1, 0)
		body = append(body, "a.tomlgs"...)
	}
	b := make([]byte, headerLen)
	copy(b, magic)
	binary.LittleEndian.PutUint16(b[8:], version)
	binary.LittleEndian.PutUint16(b[10:], 2)
	binary.LittleEndian.PutUint32(b[12:], uint32(len(body)))
	b = reseal(append(b, body...))
	if _, err := Parse(b); err == nil || !strings.Contains(err.Error(), `entry 2: name "a.toml" does not sort after "a.toml"`) {
		t.Fatalf("Parse: %v", err)
	}
}

func TestBlank(t *testing.T) {
	for _, b := range [][]byte{nil, make([]byte, 8), make([]byte, MaxSize)} {
		if _, err := Parse(b); !errors.Is(err, ErrBlank) {
			t.Fatalf("%d zero bytes: %v", len(b), err)
		}
	}
}

func TestBuildLimits(t *testing.T) {
	big := Entry{Name: "x", Grant: make([]byte, MaxGrant+1), Sig: []byte("s")}
	if _, err := Build([]Entry{big}); err == nil || !strings.Contains(err.Error(), "more than the limit of 4096") {
		t.Fatalf("oversized grant: %v", err)
	}
	many := make([]Entry, MaxEntries+1)
	if _, err := Build(many); err == nil || !strings.Contains(err.Error(), "65 grants") {
		t.Fatalf("too many: %v", err)
	}
	// 64 maximal entries exceed MaxSize: Build refuses rather than write
	// what /init would not read.
	for i := range MaxEntries {
		many[i] = Entry{Name: strings.Repeat("n", 60) + string(rune('A'+i%26)) + string(rune('a'+i/26)), Grant: make([]byte, MaxGrant), Sig: make([]byte, MaxSig)}
	}
	if _, err := Build(many[:MaxEntries]); err == nil || !strings.Contains(err.Error(), "more than the limit of 1048576") {
		t.Fatalf("oversized container: %v", err)
	}
	for _, n := range []string{"", ".hidden", "a/b", "a b", strings.Repeat("x", MaxName+1), "é"} {
		if ValidName(n) == nil {
			t.Errorf("ValidName(%q) accepted", n)
		}
	}
}

func TestDiskWriteRead(t *testing.T) {
	img := filepath.Join(t.TempDir(), "disk.img")
	writeTestDisk(t, img, []string{"root", Label})
	c, err := Build(sample())
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	p, err := WriteDisk(img, c)
	if err != nil {
		t.Fatal(err)
	}
	if p.Number != 2 {
		t.Fatalf("wrote partition %d, want 2", p.Number)
	}
	after, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	// Only the grants partition changed.
	off := int(p.FirstLBA) * 512
	if !bytes.Equal(before[:off], after[:off]) || !bytes.Equal(before[off+MaxSize:], after[off+MaxSize:]) {
		t.Fatal("bytes outside the grants partition changed")
	}
	es, err := ReadDisk(img)
	if err != nil || len(es) != 2 {
		t.Fatalf("ReadDisk: %v %v", es, err)
	}
	// A shorter container replaces a longer one whole.
	empty, _ := Build(nil)
	if _, err := WriteDisk(img, empty); err != nil {
		t.Fatal(err)
	}
	if es, err := ReadDisk(img); err != nil || len(es) != 0 {
		t.Fatalf("after clearing: %v %v", es, err)
	}
	again, _ := os.ReadFile(img)
	if _, err := WriteDisk(img, c); err != nil {
		t.Fatal(err)
	}
	third, _ := os.ReadFile(img)
	if !bytes.Equal(third, after) || bytes.Equal(again, after) {
		t.Fatal("writing the same grants does not give the same bytes")
	}

	none := filepath.Join(t.TempDir(), "none.img")
	writeTestDisk(t, none, []string{"root"})
	if _, err := WriteDisk(none, c); err == nil || !strings.Contains(err.Error(), "no partition named mcinit-grants") {
		t.Fatalf("no partition: %v", err)
	}
	two := filepath.Join(t.TempDir(), "two.img")
	writeTestDisk(t, two, []string{Label, Label})
	if _, err := WriteDisk(two, c); err == nil || !strings.Contains(err.Error(), "2 partitions named mcinit-grants (numbers 1 and 2)") {
		t.Fatalf("two partitions: %v", err)
	}
}
