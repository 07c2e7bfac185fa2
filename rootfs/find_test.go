package rootfs

import (
	"encoding/binary"
	"errors"
	"testing"
)

func TestVerityUUIDs(t *testing.T) {
	h := "00112233445566778899aabbccddeeff" + "0f0e0d0c0b0a09080706050403020100" + "ffeeddccbbaa99887766554433221100"
	d, v, err := VerityUUIDs(h[:64])
	if err != nil {
		t.Fatal(err)
	}
	if d.String() != "00112233-4455-6677-8899-aabbccddeeff" || v.String() != "0f0e0d0c-0b0a-0908-0706-050403020100" {
		t.Errorf("got %s %s", d, v)
	}
	// sha512 root hashes: the last 128 bits of the whole hash.
	_, v, err = VerityUUIDs(h + h[:32])
	if err != nil || v.String() != "00112233-4455-6677-8899-aabbccddeeff" {
		t.Errorf("sha512: %s %v", v, err)
	}
	if _, _, err := VerityUUIDs("abc"); err == nil {
		t.Error("short hash accepted")
	}
}

func TestFind(t *testing.T) {
	a, _ := ParseGUID("11111111-2222-3333-4444-555555555555")
	b, _ := ParseGUID("66666666-7777-8888-9999-aaaaaaaaaaaa")
	parts := []BlockPartition{
		{Partition: Partition{UUID: a, Label: "root"}, Dev: "/dev/vda1"},
		{Partition: Partition{UUID: b, Label: "upper"}, Dev: "/dev/vda2"},
		{Partition: Partition{UUID: b, Label: "upper"}, Dev: "/dev/vdb1"},
	}
	p, err := Find(parts, Selector{UUID: &a})
	if err != nil || p.Dev != "/dev/vda1" {
		t.Fatalf("by UUID: %v %v", p, err)
	}
	if _, err := Find(parts, Selector{Label: "upper"}); err == nil {
		t.Error("a duplicated label must be an error, not a choice")
	}
	if _, err := Find(parts, Selector{UUID: &b}); err == nil {
		t.Error("a duplicated PARTUUID must be an error")
	}
	c, _ := ParseGUID("00000000-0000-0000-0000-000000000001")
	if _, err := Find(parts, Selector{UUID: &c}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	typ, _ := RootType("amd64")
	if _, err := Find(parts, Selector{UUID: &a, Type: &typ}); !errors.Is(err, ErrNotFound) {
		t.Errorf("type mismatch must not match: %v", err)
	}
}

func TestDetectFS(t *testing.T) {
	b := make([]byte, 2048)
	if _, err := detectFS(b); err == nil {
		t.Error("zeros detected as a filesystem")
	}
	binary.LittleEndian.PutUint32(b[1024:], 0xe0f5e1e2)
	if fs, _ := detectFS(b); fs != "erofs" {
		t.Errorf("erofs: %q", fs)
	}
	b = make([]byte, 2048)
	binary.LittleEndian.PutUint16(b[1080:], 0xef53)
	if fs, _ := detectFS(b); fs != "ext4" {
		t.Errorf("ext4: %q", fs)
	}
	if fs, _ := detectFS([]byte("hsqs")); fs != "squashfs" {
		t.Errorf("squashfs: %q", fs)
	}
}
