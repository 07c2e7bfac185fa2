package initramfs

import (
	"bytes"
	"compress/gzip"
	"os"
	"os/exec"
	"testing"

	"github.com/u-root/mkuimage/cpio"
)

// testCPIO is a small newc archive with repetitive and random-looking data.
func testCPIO(t *testing.T) []byte {
	t.Helper()
	var data []byte
	for i := range 200_000 {
		data = append(data, byte(i*7919>>3), 'x')
	}
	var raw bytes.Buffer
	w := cpio.Newc.Writer(&raw)
	recs := []cpio.Record{
		cpio.Directory("etc", 0o755),
		cpio.StaticRecord(data, cpio.Info{Name: "etc/data", Mode: cpio.S_IFREG | 0o644}),
	}
	if err := cpio.WriteRecordsAndDirs(w, recs); err != nil {
		t.Fatal(err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatal(err)
	}
	return raw.Bytes()
}

// TestCompressLZ4 checks the compression step alone: the LZ4 legacy frame
// the lz4 CLI (`lz4 -l`, the format the kernel's unlz4 reads)
// decompresses to the input, and the same bytes twice.
func TestCompressLZ4(t *testing.T) {
	raw := testCPIO(t)
	var a, b bytes.Buffer
	if err := compress(&a, raw); err != nil {
		t.Fatal(err)
	}
	if err := compress(&b, raw); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two compressions of the same archive differ")
	}
	if !bytes.HasPrefix(a.Bytes(), magicLZ4Legacy) {
		t.Fatalf("not an LZ4 legacy frame: % x", a.Bytes()[:4])
	}
	if a.Len() >= len(raw)/2 {
		t.Errorf("compressed %d of %d bytes: not the HC level?", a.Len(), len(raw))
	}
	got, err := Decompress(a.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, raw) {
		t.Fatal("Decompress does not return the archive")
	}

	cli, err := exec.LookPath("lz4")
	if err != nil {
		if os.Getenv("CI") != "" || os.Getenv("MCINIT_E2E") != "" {
			t.Fatal("lz4 not installed (make deps)")
		}
		t.Skip("lz4 not installed")
	}
	cmd := exec.Command(cli, "-q", "-d", "-c")
	cmd.Stdin = bytes.NewReader(a.Bytes())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("lz4 -d: %v", err)
	}
	if !bytes.Equal(out, raw) {
		t.Fatal("lz4 -d does not return the archive")
	}
}

// TestDecompressGzip: archives rewritten by tests (and images built before
// the switch to zstd) are gzip; anything else is refused.
func TestDecompressGzip(t *testing.T) {
	raw := testCPIO(t)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw)
	zw.Close()
	got, err := Decompress(gz.Bytes())
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("gzip: %v (equal %v)", err, bytes.Equal(got, raw))
	}
	recs, err := ReadArchive(gz.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 || recs[len(recs)-1].Name != "etc/data" {
		t.Fatalf("records %v", recs)
	}
	if _, err := Decompress(raw); err == nil {
		t.Error("an uncompressed archive was accepted")
	}
}

func FuzzDecompress(f *testing.F) {
	f.Add([]byte{0x02, 0x21, 0x4c, 0x18, 0x10, 0, 0, 0})
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	var z bytes.Buffer
	if err := compress(&z, []byte("070701 hello")); err != nil {
		f.Fatal(err)
	}
	f.Add(z.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		raw, err := Decompress(data)
		if err == nil && len(raw) > maxArchive {
			t.Fatalf("%d bytes returned", len(raw))
		}
	})
}
