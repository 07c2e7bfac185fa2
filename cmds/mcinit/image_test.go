package main

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/diskimage"
)

// imageStdout runs the image verb and returns what it printed.
func imageStdout(t *testing.T, args ...string) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	runErr := runImage(args)
	os.Stdout = old
	w.Close()
	b, _ := io.ReadAll(r)
	return string(b), runErr
}

func TestImageVerb(t *testing.T) {
	dir := t.TempDir()
	init := filepath.Join(dir, "testinit")
	os.WriteFile(init, []byte("stand-in"), 0o755)
	raw := filepath.Join(dir, "raw.bin")
	os.WriteFile(raw, []byte("raw bytes"), 0o644)
	disk := filepath.Join(dir, "disk.img")
	out, err := imageStdout(t, "-arch", "arm64", "-out", disk, "-verity", "-testinit", init,
		"-add", "/usr/bin/mcinit="+init, "-upper-label", "dev-upper", "-upper-size", "8M",
		"-raw", "blob="+raw, "-json")
	if err != nil {
		t.Fatal(err)
	}
	var res diskimage.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if res.Verity == nil || len(res.Extra) != 2 || res.Extra[0].Label != "dev-upper" || res.Extra[0].Size != 8<<20 {
		t.Fatalf("result %+v", res)
	}
	if !strings.HasPrefix(strings.ReplaceAll(res.Root.PartUUID, "-", ""), res.RootHash[:32]) {
		t.Errorf("root PARTUUID %s is not the root hash's first half %s", res.Root.PartUUID, res.RootHash)
	}
	info, err := exec.Command("sgdisk", "-p", disk).CombinedOutput()
	if err != nil || !strings.Contains(string(info), "dev-upper") || !strings.Contains(string(info), "root-verity") {
		t.Errorf("sgdisk -p: %v\n%s", err, info)
	}

	out, err = imageStdout(t, "-out", disk, "-fs", "ext4", "-testinit", init)
	if err != nil || !strings.Contains(out, "(ext4, fs UUID") || strings.Contains(out, "root hash") {
		t.Errorf("plain ext4 image: %v\n%s", err, out)
	}
}

func TestImageUsage(t *testing.T) {
	var ue usageError
	for _, args := range [][]string{
		{},
		{"-out", "x", "-arch", "riscv64"},
		{"-out", "x", "-fs", "btrfs"},
		{"-out", "x", "-root-dir", "/", "-testinit", "y"},
		{"-out", "x", "-upper-label", "u", "-upper-size", "12Q"},
		{"-out", "x", "-raw", "nolabel"},
	} {
		if _, err := imageStdout(t, args...); !errors.As(err, &ue) {
			t.Errorf("%q: got %v, want a usage error", args, err)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1": 1, "4K": 4096, "64M": 64 << 20, "2G": 2 << 30} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d %v", in, got, err)
		}
	}
	for _, in := range []string{"", "0", "-1M", "1T", "M", "2048G", "1.5M"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	f.Add("64M")
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := parseSize(s); err == nil && (n <= 0 || n > 1<<40) {
			t.Fatalf("parseSize(%q) = %d", s, n)
		}
	})
}
