package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mcinit/mcinit/e2e/fixture"
	"github.com/mcinit/mcinit/e2e/harness"
)

// TEMPORARY probe (removed before hand-off).
func TestProbe(t *testing.T) {
	dir := os.Getenv("PROBE_DIR")
	if dir == "" {
		t.Skip("PROBE_DIR unset")
	}
	e, err := fixture.New(context.Background(), filepath.Join(dir, "amd64"), "amd64", t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"bench-mcinit-production", "bench-busybox"} {
		m := e.Machine("probe-"+s, filepath.Join(dir, "amd64", s+".cpio.gz"), e.Disk, fixture.OtherSerial, os.Getenv("PROBE_APPEND"))
		m.Icount = true
		m.LogDir = filepath.Join(dir, "probe-logs")
		r, err := harness.Boot(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range r.Report {
			if len(k) > 7 && k[:7] == "action." {
				t.Logf("%s %s = %s", s, k, v)
			}
		}
		start, _ := r.FirstStamped(runInitLine)
		end, _ := r.KmsgInitTS()
		t.Logf("%s interval %v", s, end-start.TS)
	}
}
