package verity

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// realSuperblock returns a superblock written by veritysetup.
func realSuperblock(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	data, hash := filepath.Join(dir, "data"), filepath.Join(dir, "hash")
	writeData(t, data, 8*4096, 3)
	if out, err := veritysetup(t, "format", "--uuid", testUUID, "--salt", "00112233", data, hash); err != nil {
		t.Fatalf("veritysetup format: %v\n%s", err, out)
	}
	return mustRead(t, hash)[:SuperblockSize]
}

func TestParseSuperblockReal(t *testing.T) {
	b := realSuperblock(t)
	s, err := ParseSuperblock(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Superblock{Version: 1, HashType: 1, Algorithm: "sha256", DataBlockSize: 4096, HashBlockSize: 4096, DataBlocks: 8, Salt: []byte{0, 0x11, 0x22, 0x33}}
	want.UUID, _ = ParseUUID(testUUID)
	if s.Version != want.Version || s.HashType != want.HashType || s.UUID != want.UUID || s.Algorithm != want.Algorithm ||
		s.DataBlockSize != want.DataBlockSize || s.HashBlockSize != want.HashBlockSize || s.DataBlocks != want.DataBlocks || !bytes.Equal(s.Salt, want.Salt) {
		t.Fatalf("parsed %+v, want %+v", s, want)
	}
	m, err := s.MarshalBinary()
	if err != nil || !bytes.Equal(m, b) {
		t.Fatalf("MarshalBinary differs from veritysetup's superblock (err %v)", err)
	}
}

func TestParseSuperblockRejects(t *testing.T) {
	good := realSuperblock(t)
	mod := func(off int, v ...byte) []byte {
		b := bytes.Clone(good)
		copy(b[off:], v)
		return b
	}
	for _, tc := range []struct {
		b    []byte
		want string
	}{
		{good[:511], "511 bytes"},
		{mod(0, 'V'), "signature"},
		{mod(8, 2), "version 2"},
		{mod(12, 0), "hash_type 0"},
		{mod(32, 'm', 'd', '5', 0, 0, 0), `"md5"`},
		{mod(39, 'x'), "after the NUL"},
		{mod(32, bytes.Repeat([]byte{'a'}, 32)...), "not NUL-terminated"},
		{mod(64, 0, 0x30), "data block size 12288"},
		{mod(68, 0, 1), "hash block size 256"},
		{mod(72, 0, 0, 0, 0, 0, 0, 0, 0), "data blocks: 0"},
		{mod(72, 0, 0, 0, 0, 0, 0, 0, 0x80), "overflow"},
		{mod(80, 1, 1), "salt_size 257"},
		{mod(84, 1), "padding"},
		{mod(92, 1), "unused salt"},
		{mod(511, 1), "padding"},
	} {
		_, err := ParseSuperblock(tc.b)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}

// FuzzParseSuperblock checks that parsing never panics and that whatever
// parses re-encodes to the same bytes (the format has one encoding).
func FuzzParseSuperblock(f *testing.F) {
	f.Add(make([]byte, SuperblockSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSuperblock(b)
		if err != nil {
			return
		}
		m, err := s.MarshalBinary()
		if err != nil {
			t.Fatalf("parsed superblock does not marshal: %v", err)
		}
		if !bytes.Equal(m, b[:SuperblockSize]) {
			t.Fatalf("re-encoding differs")
		}
		p := s.Params()
		if _, err := Layout(p, 0); err != nil {
			t.Fatalf("parsed superblock has no layout: %v", err)
		}
	})
}

// TestWriteFuzzSeeds regenerates the committed seed corpus when
// MCINIT_WRITE_SEEDS is set.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("MCINIT_WRITE_SEEDS") == "" {
		t.Skip("set MCINIT_WRITE_SEEDS=1 to regenerate testdata/fuzz seeds")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParseSuperblock")
	real := realSuperblock(t)
	seeds := map[string][]byte{
		"veritysetup-sha256":   real,
		"bad-signature":        append([]byte("verity\x00\x01"), real[8:]...),
		"short":                real[:100],
		"salt-size-max":        func() []byte { b := bytes.Clone(real); b[80], b[81] = 0, 1; return b }(),
		"sha512-512-blocks":    mustMarshal(t, Superblock{Version: 1, HashType: 1, Algorithm: "sha512", DataBlockSize: 512, HashBlockSize: 512, DataBlocks: 1 << 40, Salt: bytes.Repeat([]byte{7}, 256)}),
		"sha1-no-salt-trailer": append(mustMarshal(t, Superblock{Version: 1, HashType: 1, Algorithm: "sha1", DataBlockSize: 4096, HashBlockSize: 65536, DataBlocks: 1}), 1, 2, 3),
	}
	writeSeeds(t, dir, seeds)
	tree := fuzzVerifyHash(t)
	flipped := bytes.Clone(tree)
	flipped[len(flipped)-100] ^= 1
	big := bytes.Clone(tree)
	copy(big[64:], []byte{0, 0, 8, 0, 0, 0, 8, 0}) // 512 KiB blocks
	writeSeeds(t, filepath.Join("testdata", "fuzz", "FuzzVerify"), map[string][]byte{
		"valid": tree, "flipped-level0": flipped, "truncated": tree[:len(tree)-512],
		"big-blocks": big, "no-tree": tree[:SuperblockSize],
	})
}

func writeSeeds(t *testing.T, dir string, seeds map[string][]byte) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range seeds {
		content := "go test fuzz v1\n[]byte(" + quoteBytes(b) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func mustMarshal(t *testing.T, s Superblock) []byte {
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// quoteBytes renders b as a Go string literal with hex escapes, which the
// corpus format accepts.
func quoteBytes(b []byte) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for _, c := range b {
		sb.WriteString(`\x`)
		sb.WriteByte("0123456789abcdef"[c>>4])
		sb.WriteByte("0123456789abcdef"[c&15])
	}
	sb.WriteByte('"')
	return sb.String()
}
