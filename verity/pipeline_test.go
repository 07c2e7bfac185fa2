package verity

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
)

// memWriter is an io.WriterAt over a growing buffer.
type memWriter struct {
	mu sync.Mutex
	b  []byte
}

func (m *memWriter) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if end := int(off) + len(p); end > len(m.b) {
		m.b = append(m.b, make([]byte, end-len(m.b))...)
	}
	return copy(m.b[off:], p), nil
}

// failingReader fails reads that touch byte bad.
type failingReader struct {
	r   io.ReaderAt
	bad int64
}

func (f failingReader) ReadAt(p []byte, off int64) (int, error) {
	if off <= f.bad && f.bad < off+int64(len(p)) {
		return 0, errors.New("injected read error")
	}
	return f.r.ReadAt(p, off)
}

func patterned(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>12)
	}
	return b
}

// TestWorkersAgree checks that the result does not depend on the number of
// workers, and that the chunking across several jobs matches one job.
func TestWorkersAgree(t *testing.T) {
	// 512-byte blocks: 4096 data blocks per job, so 10000 blocks take 3 jobs.
	data := patterned(10000 * 512)
	var first []byte
	var firstTree []byte
	for _, w := range []int{1, 2, 3, 8, 64} {
		out := &memWriter{}
		p := Params{DataBlockSize: 512, HashBlockSize: 512, Salt: []byte("salt"), UUID: [16]byte{1}, Workers: w}
		res, err := Format(bytes.NewReader(data), int64(len(data)), out, 0, p)
		if err != nil {
			t.Fatalf("workers %d: %v", w, err)
		}
		if first == nil {
			first, firstTree = res.RootHash, out.b
		} else if !bytes.Equal(res.RootHash, first) || !bytes.Equal(out.b, firstTree) {
			t.Fatalf("workers %d: different result", w)
		}
		if err := Verify(bytes.NewReader(data), int64(len(data)), bytes.NewReader(out.b), 0, res.RootHash, Params{Workers: w}); err != nil {
			t.Fatalf("workers %d: verify: %v", w, err)
		}
	}
}

func TestReadErrorsStopCleanly(t *testing.T) {
	data := patterned(10000 * 512)
	for _, bad := range []int64{0, 4096*512 + 7, int64(len(data)) - 1} {
		r := failingReader{bytes.NewReader(data), bad}
		p := Params{DataBlockSize: 512, HashBlockSize: 512, Workers: 2}
		if _, err := Format(r, int64(len(data)), &memWriter{}, 0, p); err == nil || !bytes.Contains([]byte(err.Error()), []byte("injected")) {
			t.Errorf("format, bad byte %d: %v", bad, err)
		}
	}
}

// BenchmarkFormat compares one worker (the baseline) with all cores on
// 64 MiB held in memory: the ratio is the parallel speed-up of hashing.
func BenchmarkFormat(b *testing.B) {
	data := patterned(64 << 20)
	for _, w := range []int{1, 0} {
		name := fmt.Sprintf("workers=%d", w)
		if w == 0 {
			name = "workers=GOMAXPROCS"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Format(bytes.NewReader(data), int64(len(data)), &memWriter{}, 0, Params{Workers: w}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzVerify feeds arbitrary hash devices (superblock included) for a
// fixed small data image: Verify must fail cleanly, never panic or run away.
func FuzzVerify(f *testing.F) {
	data := patterned(40 * 512)
	out := &memWriter{}
	res, err := Format(bytes.NewReader(data), int64(len(data)), out, 0, Params{DataBlockSize: 512, HashBlockSize: 512, Salt: []byte{1}, UUID: [16]byte{2}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, hash []byte) {
		_ = Verify(bytes.NewReader(data), int64(len(data)), bytes.NewReader(hash), 0, res.RootHash, Params{Workers: 2})
	})
}

// fuzzVerifyHash is the seed hash device of FuzzVerify.
func fuzzVerifyHash(t testing.TB) []byte {
	data := patterned(40 * 512)
	out := &memWriter{}
	if _, err := Format(bytes.NewReader(data), int64(len(data)), out, 0, Params{DataBlockSize: 512, HashBlockSize: 512, Salt: []byte{1}, UUID: [16]byte{2}}); err != nil {
		t.Fatal(err)
	}
	return out.b
}
