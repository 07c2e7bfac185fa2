package boards_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/mcinit/mcinit/boards"
	"github.com/mcinit/mcinit/identity"
)

// debianDTBs returns the device trees shipped in Debian's full arm64
// kernel package, relative path → blob.
func debianDTBs(t testing.TB) map[string][]byte {
	t.Helper()
	dir := one(t, filepath.Join(debpkg(t, "arm64", "linux-image-arm64"), "usr/lib/linux-image-*"))
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".dtb" {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDebianDTBs identifies and matches every real vendor device tree in
// Debian's arm64 kernel: none may fail or hang, each board's own tree
// matches exactly that board, and no other tree matches a shipped board.
func TestDebianDTBs(t *testing.T) {
	set := shipped(t)
	dtbs := debianDTBs(t)
	if len(dtbs) < 500 {
		t.Fatalf("only %d device trees found", len(dtbs))
	}
	want := map[string]string{
		"freescale/imx8mq-evk.dtb":         "nxp-imx8mq-evk",
		"freescale/imx8mp-evk.dtb":         "nxp-imx8mp-evk",
		"broadcom/bcm2711-rpi-4-b.dtb":     "raspberrypi-4b",
		"rockchip/rk3399-pinebook-pro.dtb": "pine64-pinebook-pro",
	}
	names := make([]string, 0, len(dtbs))
	for n := range dtbs {
		names = append(names, n)
	}
	sort.Strings(names)
	got := map[string]string{}
	for _, n := range names {
		type result struct {
			id  identity.Identity
			b   *boards.Board
			err error
		}
		done := make(chan result, 1)
		go func(b []byte) {
			id, err := identity.FromDTB(b)
			if err != nil {
				done <- result{err: err}
				return
			}
			// Generic boards are always allowed here: the fallback must
			// not hide an ambiguity error.
			bd, err := set.Match(id, true)
			done <- result{id: id, b: bd, err: err}
		}(dtbs[n])
		select {
		case r := <-done:
			if r.err != nil {
				t.Errorf("%s: %v", n, r.err)
				continue
			}
			if !r.b.Generic {
				got[n] = r.b.Name
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: identification hung", n)
		}
	}
	for tree, board := range want {
		if got[tree] != board {
			t.Errorf("%s matched %q, want %q", tree, got[tree], board)
		}
	}
	for tree, board := range got {
		if want[tree] != board {
			t.Errorf("%s unexpectedly matched board %s", tree, board)
		}
	}
	t.Logf("%d device trees identified; %d matched a specific board", len(names), len(got))
}

// BenchmarkDebianDTBs times identify + match over all Debian trees against
// a baseline of pkg/dt parsing alone (dt.ReadFDT), side by side: for each
// tree both are timed, alternating which goes first (the first call on a
// blob pays for bringing it into the cache). See bench/identify.sh.
func BenchmarkDebianDTBs(b *testing.B) {
	set := shipped(b)
	dtbs := debianDTBs(b)
	blobs := make([][]byte, 0, len(dtbs))
	for _, v := range dtbs {
		blobs = append(blobs, v)
	}
	runtime.GC()
	b.ResetTimer()
	var base, ours time.Duration
	for i := 0; i < b.N; i++ {
		for j, blob := range blobs {
			baseline := func() {
				st := time.Now()
				if _, err := readFDT(blob); err != nil {
					b.Fatal(err)
				}
				base += time.Since(st)
			}
			identify := func() {
				st := time.Now()
				id, err := identity.FromDTB(blob)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := set.Match(id, true); err != nil {
					b.Fatal(err)
				}
				ours += time.Since(st)
			}
			if (i+j)%2 == 0 {
				baseline()
				identify()
			} else {
				identify()
				baseline()
			}
		}
	}
	n := float64(b.N * len(blobs))
	b.ReportMetric(float64(len(blobs)), "trees")
	b.ReportMetric(float64(base.Microseconds())/n, "base-µs/tree")
	b.ReportMetric(float64(ours.Microseconds())/n, "ours-µs/tree")
	b.ReportMetric(float64(ours)/float64(base), "ratio")
}
