//go:build linux

package dmverity

import (
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/verity"
	"golang.org/x/sys/unix"
)

const salt = "00112233445566778899aabbccddeeff"

// image formats a 300-block image with the real veritysetup and returns
// the data and hash paths and the root hash.
func image(t *testing.T, extra ...string) (data, hash string, root []byte) {
	t.Helper()
	dir := t.TempDir()
	data, hash = filepath.Join(dir, "data"), filepath.Join(dir, "hash")
	b := make([]byte, 300*4096)
	for i := range b {
		b[i] = byte(i * 7 / 5)
	}
	if err := os.WriteFile(data, b, 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"format", "--salt", salt}, extra...)
	out, err := exec.Command("veritysetup", append(args, data, hash)...).CombinedOutput()
	if err != nil {
		t.Fatalf("veritysetup format (Debian cryptsetup-bin): %v\n%s", err, out)
	}
	m := regexp.MustCompile(`(?m)^Root hash:\s+([0-9a-f]+)$`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no root hash:\n%s", out)
	}
	root, _ = hex.DecodeString(m[1])
	return data, hash, root
}

func TestPrepareTable(t *testing.T) {
	data, hash, root := image(t)
	s, _ := hex.DecodeString(salt)
	for _, tc := range []struct {
		on   OnCorruption
		want Expected
		tail string
	}{
		{"", Expected{RootHash: root, DataBlocks: 300}, " 1 restart_on_corruption"},
		{Restart, Expected{RootHash: root, Salt: s, DataBlocks: 300}, " 1 restart_on_corruption"},
		{Panic, Expected{RootHash: root, Algorithm: "sha256", DataBlocks: 300}, " 1 panic_on_corruption"},
		{EIO, Expected{RootHash: root, DataBlocks: 300}, ""},
	} {
		p, err := Prepare("root", data, hash, tc.want, tc.on)
		if err != nil {
			t.Fatalf("%q: %v", tc.on, err)
		}
		want := fmt.Sprintf("0 2400 verity 1 %s %s 4096 4096 300 1 sha256 %x %s%s", data, hash, root, salt, tc.tail)
		if got := p.String(); got != want {
			t.Errorf("table\n got %s\nwant %s", got, want)
		}
		if p.Table.Length != 300*4096 || p.Table.HashStartBlock != 1 {
			t.Errorf("Length %d (bytes) HashStartBlock %d", p.Table.Length, p.Table.HashStartBlock)
		}
	}
}

func TestPrepareNoSalt512(t *testing.T) {
	dir := t.TempDir()
	data, hash := filepath.Join(dir, "data"), filepath.Join(dir, "hash")
	if err := os.WriteFile(data, make([]byte, 40*512), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := verity.FormatFiles(data, hash, 0, verity.Params{DataBlockSize: 512, HashBlockSize: 512, Salt: []byte{}, HashAlgorithm: "sha512"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Prepare("r", data, hash, Expected{RootHash: res.RootHash, Algorithm: "sha512", DataBlocks: 40}, EIO)
	if err != nil {
		t.Fatal(err)
	}
	// 40 blocks, 8 sha512 digests per 512-byte block: levels of 5 and 1
	// blocks after the superblock block.
	want := fmt.Sprintf("0 40 verity 1 %s %s 512 512 40 1 sha512 %x -", data, hash, res.RootHash)
	if p.String() != want {
		t.Errorf("table\n got %s\nwant %s", p.String(), want)
	}
}

func TestPrepareRejects(t *testing.T) {
	data, hash, root := image(t)
	wrong := append([]byte{}, root...)
	wrong[31] ^= 1
	short := filepath.Join(t.TempDir(), "short")
	b, _ := os.ReadFile(data)
	if err := os.WriteFile(short, b[:len(b)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	shortHash := filepath.Join(t.TempDir(), "shorthash")
	hb, _ := os.ReadFile(hash)
	if err := os.WriteFile(shortHash, hb[:len(hb)-4096], 0o644); err != nil {
		t.Fatal(err)
	}
	badSB := filepath.Join(t.TempDir(), "badsb")
	bb := append([]byte{}, hb...)
	bb[8] = 2
	if err := os.WriteFile(badSB, bb, 0o644); err != nil {
		t.Fatal(err)
	}
	bigData, bigHash, bigRoot := image(t, "--data-block-size", "8192")
	for _, tc := range []struct {
		name, data, hash string
		want             Expected
		on               OnCorruption
		err              string
	}{
		{"root", data, hash, Expected{RootHash: wrong, DataBlocks: 300}, "", "root hash mismatch"},
		{"root", data, hash, Expected{RootHash: root[:20], DataBlocks: 300}, "", "root hash is 20 bytes"},
		{"root", data, hash, Expected{RootHash: root, Algorithm: "sha512", DataBlocks: 300}, "", "policy wants sha512"},
		{"root", data, hash, Expected{RootHash: root, Salt: []byte{1}, DataBlocks: 300}, "", "salt"},
		{"root", data, hash, Expected{RootHash: root, Salt: []byte{}, DataBlocks: 300}, "", "salt"},
		{"root", data, hash, Expected{RootHash: root, DataBlocks: 299}, "", "data blocks 300"},
		// The block count never comes from the unsigned superblock alone
		// (issue 11 item 7).
		{"root", data, hash, Expected{RootHash: root}, "", "the policy does not fix data_blocks"},
		{"root", short, hash, Expected{RootHash: root, DataBlocks: 300}, "", "data device holds 1228799 bytes"},
		{"root", data, shortHash, Expected{RootHash: root, DataBlocks: 300}, "", "hash device holds"},
		{"root", data, badSB, Expected{RootHash: root, DataBlocks: 300}, "", "version 2"},
		{"root", hash, data, Expected{RootHash: root, DataBlocks: 300}, "", "bad signature"},
		{"root", bigData, bigHash, Expected{RootHash: bigRoot, DataBlocks: 150}, "", "exceed the page size"},
		{"root", data, hash, Expected{RootHash: root, DataBlocks: 300}, "reboot", `verity_error "reboot"`},
		{"a/b", data, hash, Expected{RootHash: root, DataBlocks: 300}, "", "device name"},
		{"", data, hash, Expected{RootHash: root, DataBlocks: 300}, "", "device name"},
		{"root", data + ".missing", hash, Expected{RootHash: root, DataBlocks: 300}, "", "no such file"},
	} {
		_, err := Prepare(tc.name, tc.data, tc.hash, tc.want, tc.on)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s %s: error %v, want %q", filepath.Base(tc.data), filepath.Base(tc.hash), err, tc.err)
		}
	}
}

func TestParseExpected(t *testing.T) {
	root := strings.Repeat("ab", 32)
	e, err := ParseExpected(root, "", "0011", 7)
	if err != nil || e.Algorithm != "sha256" || len(e.RootHash) != 32 || len(e.Salt) != 2 || e.DataBlocks != 7 {
		t.Fatalf("%+v %v", e, err)
	}
	if e, err := ParseExpected(root, "", "", 0); err != nil || e.Salt != nil {
		t.Fatalf("no salt: %+v %v", e, err)
	}
	for _, r := range [][3]string{
		{strings.ToUpper(root), "", ""},
		{root[:62], "", ""},
		{root, "sha512", ""},
		{root, "md5", ""},
		{root, "", "0g"},
		{root, "", strings.Repeat("00", 257)},
	} {
		if _, err := ParseExpected(r[0], r[1], r[2], 0); err == nil {
			t.Errorf("%q accepted", r)
		}
	}
}

// TestMknod needs root (CAP_MKNOD) and a filesystem that allows device nodes.
func TestMknod(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mapper", "root")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	dev := unix.Mkdev(253, 3)
	if err := mknod(path, dev); err != nil {
		if os.Geteuid() != 0 {
			t.Skipf("mknod needs root: %v", err)
		}
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != dev {
		t.Fatalf("node %+v %v", st, err)
	}
	if err := mknod(path, dev); err != nil { // idempotent
		t.Fatal(err)
	}
	if err := mknod(path, unix.Mkdev(253, 4)); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lstat(path, &st); err != nil || st.Rdev != unix.Mkdev(253, 4) {
		t.Fatalf("stale node not replaced: %+v %v", st, err)
	}
}
