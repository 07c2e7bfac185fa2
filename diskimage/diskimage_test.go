package diskimage

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// testRoot writes the standard test root with a stand-in init binary.
func testRoot(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	init := filepath.Join(t.TempDir(), "init")
	if err := os.WriteFile(init, []byte("#!/bin/sh\necho stand-in init\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	extra := filepath.Join(t.TempDir(), "extra")
	os.WriteFile(extra, []byte("extra file"), 0o644)
	if err := WriteTestRoot(dir, RootOptions{Init: init, Files: map[string]string{"/usr/bin/mcinit": extra}}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// extract copies one partition out of a disk image into a file.
func extract(t *testing.T, disk string, p PartInfo, size int64) string {
	t.Helper()
	b, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), p.Label+".img")
	if err := os.WriteFile(out, b[p.Offset:p.Offset+size], 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

func command(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// checkPart checks a partition's GPT entry as sgdisk reads it.
func checkPart(t *testing.T, disk string, p PartInfo) {
	t.Helper()
	info := strings.ToLower(command(t, "sgdisk", "-i", itoa(p.Number), disk))
	for _, want := range []string{
		"partition guid code: " + p.TypeUUID,
		"partition unique guid: " + p.PartUUID,
		"first sector: " + itoa(int(p.Offset/512)) + " ",
		"partition name: '" + strings.ToLower(p.Label) + "'",
	} {
		if !strings.Contains(info, want) {
			t.Errorf("partition %d: sgdisk -i lacks %q:\n%s", p.Number, want, info)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// The Discoverable Partitions Specification's types, as the spec prints
// them (the code takes them from package rootfs).
const (
	dpsRootAMD64   = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
	dpsRootARM64   = "b921b045-1df0-41c3-af44-4c6f280d3fae"
	dpsVerityARM64 = "df3300ce-d69f-4c92-978c-9bfb0f38d820"
)

func formatUUIDHex(h string) string {
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func TestBuildVerityErofs(t *testing.T) {
	root := testRoot(t)
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.img")
	raw := []byte("raw partition bytes")
	spec := Spec{Arch: "arm64", RootDir: root, Verity: true, Extra: []Partition{
		{Label: "dev-upper", Size: 16 << 20, Format: Ext4},
		{Label: "rawbytes", Content: raw},
	}}
	res, err := Build(spec, disk)
	if err != nil {
		t.Fatal(err)
	}
	if res.Verity == nil || len(res.Extra) != 2 || res.Root.TypeUUID != dpsRootARM64 || res.Verity.TypeUUID != dpsVerityARM64 {
		t.Fatalf("result %+v", res)
	}
	// DPS: root PARTUUID = first 128 bits of the root hash, verity = last 128.
	h := res.RootHash
	if res.Root.PartUUID != formatUUIDHex(h[:32]) || res.Verity.PartUUID != formatUUIDHex(h[len(h)-32:]) {
		t.Errorf("PARTUUIDs %s %s do not follow root hash %s", res.Root.PartUUID, res.Verity.PartUUID, h)
	}
	for _, p := range append([]PartInfo{res.Root, *res.Verity}, res.Extra...) {
		checkPart(t, disk, p)
	}
	command(t, "sgdisk", "-v", disk)

	// The partitions hold what they should: veritysetup verifies the root
	// against the hash partition, fsck.erofs reads the tree back.
	data := extract(t, disk, res.Root, res.RootImageSize)
	hash := extract(t, disk, *res.Verity, res.Verity.Size)
	command(t, "veritysetup", "verify", data, hash, res.RootHash)
	out := filepath.Join(t.TempDir(), "x")
	command(t, "fsck.erofs", "--extract="+out, data)
	for p, want := range KnownFiles() {
		got, err := os.ReadFile(filepath.Join(out, p))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("known file %s differs after extraction (%v)", p, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(out, "usr/bin/mcinit")); string(b) != "extra file" {
		t.Errorf("extra file not in the root: %q", b)
	}
	upper := extract(t, disk, res.Extra[0], res.Extra[0].Size)
	if o := command(t, "dumpe2fs", "-h", upper); !strings.Contains(o, "dev-upper") {
		t.Errorf("upper partition is not a labelled ext4:\n%s", o)
	}
	b, _ := os.ReadFile(disk)
	if !bytes.Equal(b[res.Extra[1].Offset:res.Extra[1].Offset+int64(len(raw))], raw) {
		t.Error("raw partition bytes missing")
	}

	// Reproducible: a second build is byte-identical.
	disk2 := filepath.Join(dir, "disk2.img")
	res2, err := Build(spec, disk2)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := os.ReadFile(disk2)
	if res2.RootHash != res.RootHash || !bytes.Equal(b, b2) {
		t.Errorf("second build differs (root hash %s vs %s)", res.RootHash, res2.RootHash)
	}

	// Corrupting a block of the known blob breaks verification.
	blob := KnownFiles()[KnownBlob]
	if _, err := Corrupt(disk, blob[64<<10:68<<10]); err != nil {
		t.Fatal(err)
	}
	data = extract(t, disk, res.Root, res.RootImageSize)
	if out, err := exec.Command("veritysetup", "verify", data, hash, res.RootHash).CombinedOutput(); err == nil {
		t.Errorf("verification passed after corruption:\n%s", out)
	}
}

func TestBuildPlainExt4(t *testing.T) {
	root := testRoot(t)
	disk := filepath.Join(t.TempDir(), "disk.img")
	want := "11111111-2222-4333-8444-555555555555"
	res, err := Build(Spec{Arch: "amd64", RootDir: root, RootFS: Ext4, RootLabel: "mcroot", RootPartUUID: want}, disk)
	if err != nil {
		t.Fatal(err)
	}
	if res.Verity != nil || res.Root.PartUUID != want || res.Root.TypeUUID != dpsRootAMD64 {
		t.Fatalf("result %+v", res)
	}
	checkPart(t, disk, res.Root)
	img := extract(t, disk, res.Root, res.RootImageSize)
	command(t, "e2fsck", "-fn", img)
	if o := command(t, "debugfs", "-R", "cat /etc/mcinit-test/small.txt", img); !strings.Contains(o, "small known file") {
		t.Errorf("known file not readable from ext4: %q", o)
	}
	if o := command(t, "dumpe2fs", "-h", img); !strings.Contains(o, res.FSUUID) {
		t.Errorf("filesystem UUID %s not set", res.FSUUID)
	}

	// Reproducible from a fresh copy of the same tree (new ctimes).
	disk2 := filepath.Join(t.TempDir(), "disk2.img")
	if _, err := Build(Spec{Arch: "amd64", RootDir: testRoot(t), RootFS: Ext4, RootLabel: "mcroot", RootPartUUID: want}, disk2); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(disk)
	b, _ := os.ReadFile(disk2)
	if !bytes.Equal(a, b) {
		t.Error("ext4 disk built from a fresh copy of the tree differs")
	}
}

func TestBuildErrors(t *testing.T) {
	root := testRoot(t)
	out := filepath.Join(t.TempDir(), "d.img")
	for name, s := range map[string]Spec{
		"arch":     {Arch: "riscv64", RootDir: root},
		"fs":       {Arch: "amd64", RootDir: root, RootFS: "btrfs"},
		"uuid":     {Arch: "amd64", RootDir: root, RootPartUUID: "nope"},
		"label":    {Arch: "amd64", RootDir: root, Extra: []Partition{{Size: 1}}},
		"format":   {Arch: "amd64", RootDir: root, Extra: []Partition{{Label: "x", Format: "xfs"}}},
		"no tree":  {Arch: "amd64"},
		"bad tree": {Arch: "amd64", RootDir: "/nonexistent"},
	} {
		if _, err := Build(s, out); err == nil {
			t.Errorf("%s: Build accepted a bad spec", name)
		}
	}
}

func TestParseVerityFormat(t *testing.T) {
	out := "VERITY header information for h\nUUID:            \t1\nHash type:       \t1\nData blocks:     \t12\nData block size: \t4096\nSalt:            \tab\nRoot hash:      \tc0ffee\n"
	h, s, n, err := parseVerityFormat(out)
	if err != nil || h != "c0ffee" || s != "ab" || n != 12 {
		t.Fatalf("parseVerityFormat = %q %q %d %v", h, s, n, err)
	}
	if _, _, _, err := parseVerityFormat("Root hash: zz\nData blocks: 1\n"); err == nil {
		t.Error("accepted a non-hex root hash")
	}
}

func FuzzParseVerityFormat(f *testing.F) {
	f.Add("Data blocks: 12\nSalt: ab\nRoot hash: c0ffee\n")
	f.Fuzz(func(t *testing.T, s string) {
		h, _, n, err := parseVerityFormat(s)
		if err == nil && (h == "" || n == 0) {
			t.Fatal("accepted output without hash or blocks")
		}
	})
}
