// Command uefiboot is the firmware row of `make bench`: the same kernel,
// initramfs and verity disk booted two ways, interleaved boot by boot:
//
//   - uki:    a signed UKI from the disk's ESP through OVMF with Secure
//     Boot enforcing (firmware start, signature check, systemd-stub);
//   - direct: QEMU's direct kernel boot (-kernel/-initrd/-append).
//
// It reports the wall time from QEMU's start (for the UKI: firmware start)
// to the real init's first line, per side, the medians and their ratio,
// plus the kernel-time span from "Run /init" to the real init (mcinit's
// own work, which must not differ between the sides). Wall time on a
// shared machine drifts; only the interleaved ratio is meaningful.
//
//	go run ./bench/uefiboot [-rounds 3] [-dir DIR]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/mcinit/mcinit/e2e/fixture"
	"github.com/mcinit/mcinit/e2e/harness"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "bench/uefiboot: %v\n", err)
		os.Exit(1)
	}
}

func step(format string, a ...any) { fmt.Fprintf(os.Stderr, "==> "+format+"\n", a...) }

type sample struct{ toInit, initSpan time.Duration }

func run() error {
	rounds := flag.Int("rounds", 3, "boots per side (interleaved)")
	dir := flag.String("dir", os.Getenv("MCINIT_E2E_DIR"), "work `DIR`, kept and reused between runs")
	flag.Parse()
	if *rounds < 1 || *rounds > 20 {
		return fmt.Errorf("-rounds %d: want 1..20", *rounds)
	}
	keep := *dir != ""
	if !keep {
		d, err := os.MkdirTemp("", "mcinit-bench-uefi-")
		if err != nil {
			return err
		}
		*dir = d
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	envDir := filepath.Join(abs, "amd64")
	if err := os.MkdirAll(envDir, 0o755); err != nil {
		return err
	}
	ctx := context.Background()
	e, err := fixture.New(ctx, envDir, "amd64", step)
	if err != nil {
		return err
	}
	cmdline := e.UKICmdline("")
	step("building the signed UKI and its ESP")
	efi, err := e.UKI(ctx, "bench-uki", e.Initrd, cmdline, fixture.Snakeoil)
	if err != nil {
		return err
	}
	disk, err := e.UEFIDisk("bench-uefi", efi)
	if err != nil {
		return err
	}
	logDir := filepath.Join(abs, "uefiboot-logs")
	sides := []struct {
		name    string
		machine func(i int) (harness.Machine, error)
		got     []sample
	}{
		{name: "uki", machine: func(i int) (harness.Machine, error) {
			m, err := e.UEFIMachine(fmt.Sprintf("uki-%d", i), disk, fixture.OtherSerial)
			return m, err
		}},
		{name: "direct", machine: func(i int) (harness.Machine, error) {
			// Same disk (with the ESP, unused here), kernel, initramfs and
			// command line (the harness's console settings plus
			// UKITimerCheck are the UKI's).
			m := e.Machine(fmt.Sprintf("direct-%d", i), e.Initrd, disk, fixture.OtherSerial, fixture.UKITimerCheck)
			m.Timeout = 15 * time.Minute
			return m, nil
		}},
	}
	for i := 0; i < *rounds; i++ {
		for s := range sides {
			m, err := sides[s].machine(i)
			if err != nil {
				return err
			}
			m.LogDir = logDir
			r, err := harness.Boot(ctx, m)
			if err != nil {
				return err
			}
			if !r.ReportComplete || r.ReportAt == 0 {
				return fmt.Errorf("%s boot %d did not reach the real init (%s); log %s", sides[s].name, i, r.Outcome, r.LogPath)
			}
			span, _ := r.InitToRealInit()
			sides[s].got = append(sides[s].got, sample{r.ReportAt, span})
			step("round %d %-6s: QEMU start → real init %v (Run /init → real init %v)", i+1, sides[s].name, r.ReportAt.Round(time.Millisecond), span.Round(time.Millisecond))
		}
	}
	fmt.Printf("firmware boot: QEMU start → real init's first line, wall time, %d interleaved rounds (amd64, TCG)\n", *rounds)
	fmt.Printf("%-8s %-40s %12s %22s\n", "side", "samples (s)", "median (s)", "Run /init→init median")
	med := map[string]time.Duration{}
	for _, s := range sides {
		var to, in []time.Duration
		line := ""
		for _, g := range s.got {
			to = append(to, g.toInit)
			in = append(in, g.initSpan)
			line += fmt.Sprintf("%.1f ", g.toInit.Seconds())
		}
		med[s.name] = median(to)
		fmt.Printf("%-8s %-40s %12.1f %19d ms\n", s.name, line, med[s.name].Seconds(), median(in).Milliseconds())
	}
	fmt.Printf("ratio uki/direct: %.2f×\n", med["uki"].Seconds()/med["direct"].Seconds())
	if !keep {
		os.RemoveAll(abs)
	}
	return nil
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
