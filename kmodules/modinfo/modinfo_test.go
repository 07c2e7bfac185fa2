package modinfo

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/internal/boundedfile"
	"github.com/mcinit/mcinit/kmodules"
)

// TestTinyELF: the fuzz seeds are ELF files the parser reads, so the
// fuzzer starts from inputs that reach the .modinfo loop.
func TestTinyELF(t *testing.T) {
	for _, is64 := range []bool{true, false} {
		for _, bo := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
			info, err := parse(tinyELF(is64, bo, "license=GPL\x00name=crc7\x00"))
			if err != nil || info["name"] != "crc7" || info["license"] != "GPL" {
				t.Errorf("64-bit %v %v: %v %v", is64, bo, info, err)
			}
		}
	}
}

// TestReadModuleBound: a compressed module that inflates past
// kmodules.MaxModuleSize is refused with an error naming the file, not
// read into memory whole.
func TestReadModuleBound(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bomb.ko.gz")
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zero := make([]byte, 1<<20)
	for i := 0; i <= kmodules.MaxModuleSize>>20; i++ {
		zw.Write(zero)
	}
	zw.Close()
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadModule(p)
	if !errors.Is(err, boundedfile.ErrTooLarge) || !strings.Contains(err.Error(), p) {
		t.Errorf("ReadModule(%d MiB of zeros) = %v, want a too-large error naming the file", kmodules.MaxModuleSize>>20+1, err)
	}
}

// TestReadTruncated: a damaged compressed module is an error naming it.
func TestReadTruncated(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.ko.gz")
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(tinyELF(true, binary.LittleEndian, "name=x\x00"))
	zw.Close()
	if err := os.WriteFile(p, buf.Bytes()[:buf.Len()/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("Read(truncated gzip) = %v", err)
	}
}

func TestPlainPath(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/a/b.ko":     "kernel/a/b.ko",
		"kernel/a/b.ko.xz":  "kernel/a/b.ko",
		"kernel/a/b.ko.zst": "kernel/a/b.ko",
		"kernel/a/b.ko.gz":  "kernel/a/b.ko",
		"kernel/a/b.gz":     "kernel/a/b.gz",
	} {
		if got := PlainPath(in); got != want {
			t.Errorf("PlainPath(%s) = %s, want %s", in, got, want)
		}
	}
}
