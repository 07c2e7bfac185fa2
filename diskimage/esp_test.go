package diskimage

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestBuildWithESP(t *testing.T) {
	root := testRoot(t)
	uki := bytes.Repeat([]byte("MZ pretend UKI "), 70000)
	spec := Spec{Arch: "amd64", RootDir: root, AllRoot: true, Verity: true,
		Extra: []Partition{ESP(map[string][]byte{"EFI/BOOT/BOOTX64.EFI": uki, "loader/x.conf": []byte("x")})}}
	dir := t.TempDir()
	var disks [2][]byte
	var res *Result
	for i := range disks {
		out := filepath.Join(dir, "disk"+itoa(i)+".img")
		var err error
		if res, err = Build(spec, out); err != nil {
			t.Fatal(err)
		}
		if disks[i], err = os.ReadFile(out); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(disks[0], disks[1]) {
		t.Fatal("two builds with an ESP differ")
	}
	if len(res.Extra) != 1 || res.Extra[0].TypeUUID != TypeESP || res.Root.Number != 1 || res.Verity.Number != 2 {
		t.Fatalf("partitions: root %d verity %d extra %+v", res.Root.Number, res.Verity.Number, res.Extra)
	}
	esp := res.Extra[0]
	disk := filepath.Join(dir, "disk0.img")
	checkPart(t, disk, esp)
	img := extract(t, disk, esp, esp.Size)
	if out := command(t, "fsck.fat", "-n", img); !strings.Contains(out, "2 files") && !strings.Contains(out, "files") {
		t.Errorf("fsck.fat: %s", out)
	}
	got := filepath.Join(t.TempDir(), "boot.efi")
	command(t, "mcopy", "-i", img, "::/EFI/BOOT/BOOTX64.EFI", got)
	if b, _ := os.ReadFile(got); !bytes.Equal(b, uki) {
		t.Error("the ESP's BOOTX64.EFI differs from the input")
	}

	bad := spec
	bad.Extra = []Partition{ESP(map[string][]byte{"../x": {1}})}
	if _, err := Build(bad, filepath.Join(dir, "bad.img")); err == nil || !strings.Contains(err.Error(), "not a clean relative path") {
		t.Errorf("bad ESP path: %v", err)
	}
}

func TestAddESP(t *testing.T) {
	dir := t.TempDir()
	spec := Spec{Arch: "arm64", RootDir: testRoot(t), AllRoot: true, Verity: true}
	res, err := Build(spec, filepath.Join(dir, "base.img"))
	if err != nil {
		t.Fatal(err)
	}
	base, _ := os.ReadFile(res.Path)
	files := map[string][]byte{"EFI/BOOT/BOOTAA64.EFI": []byte("MZ uki")}
	var imgs [2][]byte
	var p PartInfo
	for i := range imgs {
		d := filepath.Join(dir, "d"+itoa(i)+".img")
		os.WriteFile(d, base, 0o644)
		if p, err = AddESP(d, files); err != nil {
			t.Fatal(err)
		}
		imgs[i], _ = os.ReadFile(d)
	}
	if !bytes.Equal(imgs[0], imgs[1]) {
		t.Fatal("AddESP is not reproducible")
	}
	if p.Number != 3 {
		t.Fatalf("ESP is partition %d, want 3", p.Number)
	}
	d := filepath.Join(dir, "d0.img")
	checkPart(t, d, p)
	checkPart(t, d, res.Root)
	checkPart(t, d, *res.Verity)
	// Root and verity bytes are untouched.
	if !bytes.Equal(imgs[0][res.Root.Offset:res.Verity.Offset+res.Verity.Size], base[res.Root.Offset:res.Verity.Offset+res.Verity.Size]) {
		t.Error("AddESP changed the root or verity partition")
	}
	command(t, "sgdisk", "-v", d)
	got := filepath.Join(dir, "got")
	command(t, "mcopy", "-i", d+"@@"+strconv.FormatInt(p.Offset, 10), "::/EFI/BOOT/BOOTAA64.EFI", got)
	if b, _ := os.ReadFile(got); string(b) != "MZ uki" {
		t.Errorf("BOOTAA64.EFI = %q", b)
	}
}
