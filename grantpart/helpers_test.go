package grantpart

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/mcinit/mcinit/internal/testenv"
)

// writeTestDisk makes a GPT disk image with one 1 MiB partition per label,
// written by the real sgdisk.
func writeTestDisk(t *testing.T, img string, labels []string) {
	t.Helper()
	testenv.RequireTool(t, "sgdisk", "gdisk")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, int64(len(labels)+2)<<20); err != nil {
		t.Fatal(err)
	}
	var args []string
	for i, l := range labels {
		n := i + 1
		args = append(args, "-n", fmt.Sprintf("%d:0:+1M", n), "-c", fmt.Sprintf("%d:%s", n, l))
	}
	// Fill the disk so a write outside the partition would show.
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, (len(labels)+2)<<20)
	for i := range buf {
		buf[i] = byte(i*7 + 3)
	}
	if _, err := f.WriteAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command("sgdisk", append(args, img)...).CombinedOutput(); err != nil {
		t.Fatalf("sgdisk: %v\n%s", err, out)
	}
}
