package diskimage

import (
	"bytes"
	"os"
	"path/filepath"
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
