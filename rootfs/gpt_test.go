package rootfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/mcinit/mcinit/internal/testenv"
)

func TestGUIDRoundTrip(t *testing.T) {
	const s = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
	g, err := ParseGUID(s)
	if err != nil {
		t.Fatal(err)
	}
	// On disk the first field is little-endian.
	if g[0] != 0xe3 || g[3] != 0x4f {
		t.Fatalf("mixed-endian layout wrong: %x", g)
	}
	if g.String() != s {
		t.Fatalf("round trip: %s", g)
	}
	for _, bad := range []string{"", "4f68bce3e8cd4db196e7fbcaf984b709", "4f68bce3-e8cd-4db1-96e7-fbcaf984b70g"} {
		if _, err := ParseGUID(bad); err == nil {
			t.Errorf("ParseGUID(%q) accepted", bad)
		}
	}
}

// TestParseGPTSgdisk checks the parser against a table written by the real
// sgdisk.
func TestParseGPTSgdisk(t *testing.T) {
	testenv.RequireTool(t, "sgdisk", "gdisk")
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 8<<20); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sgdisk",
		"-n", "1:2048:+2M", "-t", "1:4f68bce3-e8cd-4db1-96e7-fbcaf984b709", "-c", "1:root-x86-64", "-u", "1:11111111-2222-3333-4444-555555555555",
		"-n", "2:0:+1M", "-t", "2:2c7357ed-ebd2-46d9-aec1-23d437ec2bf5", "-c", "2:root-x86-64-verity", "-u", "2:66666666-7777-8888-9999-aaaaaaaaaaaa",
		img).CombinedOutput()
	if err != nil {
		t.Fatalf("sgdisk: %v\n%s", err, out)
	}
	disk, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := ParseGPT(disk, 512)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 2 {
		t.Fatalf("got %d partitions", len(parts))
	}
	p := parts[0]
	if p.Number != 1 || p.Label != "root-x86-64" || p.UUID.String() != "11111111-2222-3333-4444-555555555555" ||
		p.Type.String() != "4f68bce3-e8cd-4db1-96e7-fbcaf984b709" || p.FirstLBA != 2048 {
		t.Errorf("partition 1: %+v", p)
	}
	if parts[1].Label != "root-x86-64-verity" || parts[1].Number != 2 {
		t.Errorf("partition 2: %+v", parts[1])
	}
	// Any corruption of the header is caught by its CRC.
	disk[512+40] ^= 1
	if _, err := ParseGPT(disk, 512); err == nil {
		t.Error("corrupted header accepted")
	}
}

func FuzzParseGPT(f *testing.F) {
	f.Add(make([]byte, 1024))
	f.Fuzz(func(t *testing.T, b []byte) {
		parts, err := ParseGPT(b, 512)
		if err == nil && len(parts) > maxEntries {
			t.Fatal("too many partitions")
		}
	})
}
