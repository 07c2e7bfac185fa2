package verity

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// veritysetup runs the real tool (Debian package cryptsetup-bin).
func veritysetup(t *testing.T, args ...string) (string, error) {
	t.Helper()
	path, err := exec.LookPath("veritysetup")
	if err != nil {
		t.Fatalf("veritysetup not found (install Debian's cryptsetup-bin): %v", err)
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	return string(out), err
}

var rootRE = regexp.MustCompile(`(?m)^Root hash:\s+([0-9a-f]+)$`)

func rootOf(t *testing.T, out string) string {
	t.Helper()
	m := rootRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no root hash in veritysetup output:\n%s", out)
	}
	return m[1]
}

// writeData writes n pseudo-random bytes with some all-zero blocks mixed in.
func writeData(t *testing.T, path string, n int64, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	for off := int64(0); off+512 <= n; off += 512 * 7 {
		clear(b[off : off+512])
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func copyFile(t *testing.T, dst, src string) {
	t.Helper()
	if err := os.WriteFile(dst, mustRead(t, src), 0o644); err != nil {
		t.Fatal(err)
	}
}

type tcase struct {
	blocks     int64
	alg        string
	dbs, hbs   uint32
	salt       string // hex, "-" for none
	noSB       bool
	sameFile   bool // tree after the data in the same file, at hashOffset
	offsetPad  int64
	prefill    bool // hash file pre-filled with 0xff: only the tree may be written
	dataBlocks uint64
}

func (c tcase) String() string {
	return fmt.Sprintf("%s-%d-%d-%dblk-salt%d-nosb%v-same%v+%d-pre%v-db%d", c.alg, c.dbs, c.hbs, c.blocks, len(c.salt), c.noSB, c.sameFile, c.offsetPad, c.prefill, c.dataBlocks)
}

const testUUID = "0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0"

func TestFormatMatchesVeritysetup(t *testing.T) {
	salt32 := strings.Repeat("a5", 32)
	cases := []tcase{
		// 4096/sha256: 128 digests per block.
		{blocks: 1, alg: "sha256", dbs: 4096, hbs: 4096, salt: salt32},
		{blocks: 2, alg: "sha256", dbs: 4096, hbs: 4096, salt: salt32},
		{blocks: 128, alg: "sha256", dbs: 4096, hbs: 4096, salt: salt32},
		{blocks: 129, alg: "sha256", dbs: 4096, hbs: 4096, salt: salt32},
		{blocks: 1000, alg: "sha256", dbs: 4096, hbs: 4096, salt: "-"},
		{blocks: 16385, alg: "sha256", dbs: 4096, hbs: 4096, salt: salt32}, // 3 levels
		{blocks: 1000, alg: "sha256", dbs: 4096, hbs: 4096, salt: "00"},
		{blocks: 129, alg: "sha256", dbs: 4096, hbs: 4096, salt: strings.Repeat("17", 256)},
		// 512/sha256: 16 digests per block, so levels are cheap to cross.
		{blocks: 16, alg: "sha256", dbs: 512, hbs: 512, salt: salt32},
		{blocks: 17, alg: "sha256", dbs: 512, hbs: 512, salt: salt32},
		{blocks: 256, alg: "sha256", dbs: 512, hbs: 512, salt: salt32},
		{blocks: 257, alg: "sha256", dbs: 512, hbs: 512, salt: salt32},
		{blocks: 4096, alg: "sha256", dbs: 512, hbs: 512, salt: salt32},
		{blocks: 4097, alg: "sha256", dbs: 512, hbs: 512, salt: salt32},
		{blocks: 9000, alg: "sha256", dbs: 512, hbs: 512, salt: salt32, noSB: true},
		// Mixed block sizes.
		{blocks: 3000, alg: "sha256", dbs: 512, hbs: 4096, salt: salt32},
		{blocks: 300, alg: "sha256", dbs: 4096, hbs: 1024, salt: salt32},
		{blocks: 40, alg: "sha256", dbs: 65536, hbs: 8192, salt: salt32},
		{blocks: 7, alg: "sha1", dbs: 524288, hbs: 512, salt: salt32}, // jobs smaller than a hash block
		// sha512 (64 per 4 KiB block) and sha1 (20-byte digests in 32-byte slots).
		{blocks: 64, alg: "sha512", dbs: 4096, hbs: 4096, salt: salt32},
		{blocks: 65, alg: "sha512", dbs: 4096, hbs: 4096, salt: salt32},
		{blocks: 5000, alg: "sha512", dbs: 512, hbs: 512, salt: "-"},
		{blocks: 300, alg: "sha1", dbs: 4096, hbs: 4096, salt: salt32},
		{blocks: 600, alg: "sha1", dbs: 512, hbs: 512, salt: salt32, noSB: true},
		// No superblock.
		{blocks: 1, alg: "sha256", dbs: 4096, hbs: 4096, salt: salt32, noSB: true},
		{blocks: 129, alg: "sha256", dbs: 4096, hbs: 4096, salt: salt32, noSB: true},
		// Tree in the same file after the data.
		{blocks: 300, alg: "sha256", dbs: 4096, hbs: 4096, salt: salt32, sameFile: true},
		{blocks: 300, alg: "sha256", dbs: 4096, hbs: 4096, salt: salt32, sameFile: true, offsetPad: 512},
		{blocks: 300, alg: "sha256", dbs: 4096, hbs: 4096, salt: salt32, sameFile: true, offsetPad: 8192, noSB: true},
		{blocks: 1, alg: "sha256", dbs: 4096, hbs: 4096, salt: salt32, sameFile: true},
		// Existing hash device content around the tree is left alone.
		{blocks: 129, alg: "sha256", dbs: 4096, hbs: 4096, salt: salt32, prefill: true},
		// Only part of the data covered.
		{blocks: 500, alg: "sha256", dbs: 4096, hbs: 4096, salt: salt32, dataBlocks: 333},
	}
	for i, c := range cases {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			checkCase(t, c, uint64(i))
		})
	}
}

func checkCase(t *testing.T, c tcase, seed uint64) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	writeData(t, data, c.blocks*int64(c.dbs), seed)
	vData, vHash := data, filepath.Join(dir, "v.hash")
	oData, oHash := data, filepath.Join(dir, "o.hash")
	var offset int64
	if c.sameFile {
		vData, oData = filepath.Join(dir, "v.img"), filepath.Join(dir, "o.img")
		copyFile(t, vData, data)
		copyFile(t, oData, data)
		vHash, oHash = vData, oData
		offset = c.blocks*int64(c.dbs) + c.offsetPad
	}
	if c.prefill {
		ff := bytes.Repeat([]byte{0xff}, 200000)
		for _, p := range []string{vHash, oHash} {
			if err := os.WriteFile(p, ff, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	args := []string{"format", "--hash", c.alg, "--data-block-size", fmt.Sprint(c.dbs),
		"--hash-block-size", fmt.Sprint(c.hbs), "--salt", c.salt}
	p := Params{HashAlgorithm: c.alg, DataBlockSize: c.dbs, HashBlockSize: c.hbs, NoSuperblock: c.noSB, DataBlocks: c.dataBlocks}
	if c.noSB {
		args = append(args, "--no-superblock")
	} else {
		args = append(args, "--uuid", testUUID)
		u, err := ParseUUID(testUUID)
		if err != nil {
			t.Fatal(err)
		}
		p.UUID = u
	}
	p.Salt = []byte{}
	if c.salt != "-" {
		p.Salt, _ = hex.DecodeString(c.salt)
	}
	if c.sameFile {
		args = append(args, "--hash-offset", fmt.Sprint(offset), "--data-blocks", fmt.Sprint(c.blocks))
	}
	if c.dataBlocks != 0 {
		args = append(args, "--data-blocks", fmt.Sprint(c.dataBlocks))
	}
	out, err := veritysetup(t, append(args, vData, vHash)...)
	if err != nil {
		t.Fatalf("veritysetup %v: %v\n%s", args, err, out)
	}
	want := rootOf(t, out)
	res, err := FormatFiles(oData, oHash, offset, p)
	if err != nil {
		t.Fatalf("FormatFiles: %v", err)
	}
	if got := hex.EncodeToString(res.RootHash); got != want {
		t.Fatalf("root hash %s, veritysetup %s", got, want)
	}
	if !bytes.Equal(mustRead(t, oHash), mustRead(t, vHash)) {
		t.Fatalf("hash device differs from veritysetup's")
	}
	if res.HashBlocks == 0 && c.blocks > 1 {
		t.Fatalf("no hash blocks")
	}
	if !strings.Contains(out, fmt.Sprintf("Hash blocks:     \t%d\n", res.HashBlocks)) {
		t.Errorf("hash blocks %d, veritysetup says:\n%s", res.HashBlocks, out)
	}

	// Each tool verifies the other's tree.
	vargs := []string{"verify", "--hash", c.alg, "--data-block-size", fmt.Sprint(c.dbs), "--hash-block-size", fmt.Sprint(c.hbs)}
	if c.noSB {
		vargs = append(vargs, "--no-superblock", "--salt", c.salt)
	}
	if c.sameFile {
		vargs = append(vargs, "--hash-offset", fmt.Sprint(offset), "--data-blocks", fmt.Sprint(c.blocks))
	}
	if c.dataBlocks != 0 {
		vargs = append(vargs, "--data-blocks", fmt.Sprint(c.dataBlocks))
	}
	if out, err := veritysetup(t, append(vargs, oData, oHash, want)...); err != nil {
		t.Fatalf("veritysetup verify of our tree: %v\n%s", err, out)
	}
	vp := Params{NoSuperblock: c.noSB}
	if c.noSB {
		vp = p
		vp.UUID = [16]byte{}
	}
	if c.sameFile && c.noSB {
		vp.DataBlocks = uint64(c.blocks)
	}
	if err := VerifyFiles(vData, vHash, offset, res.RootHash, vp); err != nil {
		t.Fatalf("VerifyFiles of veritysetup's tree: %v", err)
	}
}

func TestRandomSaltAndUUID(t *testing.T) {
	dir := t.TempDir()
	data, hash := filepath.Join(dir, "data"), filepath.Join(dir, "hash")
	writeData(t, data, 300*4096, 99)
	res, err := FormatFiles(data, hash, 0, Params{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Salt) != DefaultSaltSize || bytes.Equal(res.Salt, make([]byte, DefaultSaltSize)) {
		t.Fatalf("salt %x: want %d random bytes", res.Salt, DefaultSaltSize)
	}
	if res.UUID[6]>>4 != 4 || res.UUID[8]>>6 != 2 {
		t.Fatalf("uuid %s is not a version 4 UUID", FormatUUID(res.UUID))
	}
	root := hex.EncodeToString(res.RootHash)
	out, err := veritysetup(t, "dump", hash)
	if err != nil {
		t.Fatalf("veritysetup dump: %v\n%s", err, out)
	}
	for _, s := range []string{FormatUUID(res.UUID), hex.EncodeToString(res.Salt), "Data blocks:     \t300"} {
		if !strings.Contains(out, s) {
			t.Errorf("veritysetup dump lacks %q:\n%s", s, out)
		}
	}
	if out, err := veritysetup(t, "verify", data, hash, root); err != nil {
		t.Fatalf("veritysetup verify: %v\n%s", err, out)
	}
}

func TestVerifyNamesFirstBadBlock(t *testing.T) {
	dir := t.TempDir()
	data, hash := filepath.Join(dir, "data"), filepath.Join(dir, "hash")
	// 512-byte blocks: 16 digests per block, 3 levels for 1000 blocks.
	const blocks = 1000
	writeData(t, data, blocks*512, 5)
	p := Params{DataBlockSize: 512, HashBlockSize: 512, Salt: []byte{1, 2, 3}}
	res, err := FormatFiles(data, hash, 0, p)
	if err != nil {
		t.Fatal(err)
	}
	// Geometry: superblock in block 0; level 2 (1 block) at 1, level 1
	// (4 blocks) at 2-5, level 0 (63 blocks) at 6-68.
	if res.HashStartBlock != 1 || res.HashBlocks != 68 {
		t.Fatalf("layout start %d blocks %d, want 1 and 68", res.HashStartBlock, res.HashBlocks)
	}
	flip := func(path string, off int64) func() {
		b := mustRead(t, path)
		b[off] ^= 0x40
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return func() {
			b[off] ^= 0x40
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		path string
		off  int64
		want CorruptionError
	}{
		{data, 700*512 + 3, CorruptionError{Area: "data", Block: 700, Level: -1}},
		{data, 0, CorruptionError{Area: "data", Block: 0, Level: -1}},
		{data, blocks*512 - 1, CorruptionError{Area: "data", Block: blocks - 1, Level: -1}},
		{hash, 40*512 + 511, CorruptionError{Area: "hash", Block: 40, Level: 0}},
		{hash, 3 * 512, CorruptionError{Area: "hash", Block: 3, Level: 1}},
		{hash, 1*512 + 100, CorruptionError{Area: "hash", Block: 1, Level: 2, Top: true}},
	}
	for _, tc := range tests {
		undo := flip(tc.path, tc.off)
		err := VerifyFiles(data, hash, 0, res.RootHash, Params{})
		var ce *CorruptionError
		if !errors.As(err, &ce) || *ce != tc.want {
			t.Errorf("flip at %s+%d: got %v, want %v", filepath.Base(tc.path), tc.off, err, &tc.want)
		}
		if out, err := veritysetup(t, "verify", data, hash, hex.EncodeToString(res.RootHash)); err == nil {
			t.Errorf("flip at %s+%d: veritysetup verify accepted it:\n%s", filepath.Base(tc.path), tc.off, out)
		}
		undo()
	}
	if err := VerifyFiles(data, hash, 0, res.RootHash, Params{}); err != nil {
		t.Fatalf("restored image: %v", err)
	}
	wrong := bytes.Clone(res.RootHash)
	wrong[0] ^= 1
	var ce *CorruptionError
	if err := VerifyFiles(data, hash, 0, wrong, Params{}); !errors.As(err, &ce) || !ce.Top {
		t.Fatalf("wrong root hash: %v", err)
	}
	if err := VerifyFiles(data, hash, 0, res.RootHash, Params{Salt: []byte{9}}); err == nil || !strings.Contains(err.Error(), "salt") {
		t.Fatalf("mismatching salt: %v", err)
	}
}

func TestFormatRejects(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	writeData(t, data, 5000, 1)
	hash := filepath.Join(dir, "hash")
	for _, tc := range []struct {
		p      Params
		offset int64
		want   string
	}{
		{Params{}, 0, "not a multiple of the data block size"},
		{Params{DataBlocks: 2}, 0, "smaller than 2 blocks"},
		{Params{DataBlockSize: 1000, DataBlocks: 1}, 0, "data block size 1000"},
		{Params{HashBlockSize: 256, DataBlocks: 1}, 0, "hash block size 256"},
		{Params{HashAlgorithm: "md5", DataBlocks: 1}, 0, `"md5" not supported`},
		{Params{Salt: make([]byte, 257), DataBlocks: 1}, 0, "salt of 257 bytes"},
		{Params{DataBlocks: 1}, 100, "multiple of 512"},
		{Params{DataBlocks: 1, NoSuperblock: true}, 512, "multiple of the hash block size"},
	} {
		_, err := FormatFiles(data, hash, tc.offset, tc.p)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.p, err, tc.want)
		}
	}
	// The same file: the tree may not overlap the data.
	if _, err := FormatFiles(data, data, 0, Params{DataBlocks: 1}); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("overlap: %v", err)
	}
}

func TestUUID(t *testing.T) {
	u, err := ParseUUID("0F1E2D3C-4B5A-4978-8796-A5B4C3D2E1F0")
	if err != nil {
		t.Fatal(err)
	}
	if FormatUUID(u) != testUUID {
		t.Fatalf("round trip gave %s", FormatUUID(u))
	}
	for _, bad := range []string{"", "0f1e2d3c4b5a49788796a5b4c3d2e1f0", "0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1fg", "0f1e2d3c-4b5a-4978-8796_a5b4c3d2e1f0"} {
		if _, err := ParseUUID(bad); err == nil {
			t.Errorf("ParseUUID(%q) accepted", bad)
		}
	}
}
