// Command boot is the boot benchmark of `make bench`: mcinit's production
// initramfs against a classic busybox initramfs (bench/busybox) doing the
// same job — twice: loading the modules mcinit's production boot loads
// (the fair baseline) and loading every module of the image (the old
// one) — booted side by side on the same kernel and verity root disk
// under QEMU (TCG, -icount shift=0,sleep=on: guest time counts
// instructions, device waits count in real time; see -icount-sleep),
// interleaved boot by boot. It prints the medians, the ratios against the
// issue's targets, the initramfs sizes and where the time inside /init
// goes.
//
//	go run ./bench/boot [-rounds 5] [-dir DIR] [-icount-sleep=false]
//
// MCINIT_E2E_DIR (or -dir) keeps and reuses the built inputs between runs.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mcinit/mcinit/boards"
	"github.com/mcinit/mcinit/e2e/fixture"
	"github.com/mcinit/mcinit/e2e/harness"
	"github.com/mcinit/mcinit/initramfs"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "bench/boot: %v\n", err)
		os.Exit(1)
	}
}

func step(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "==> "+format+"\n", a...)
}

// side is one initramfs under test.
type side struct {
	name   string
	initrd string
	marks  markers
	// retries counts boots that did not reach the real init (see bootOnce).
	retries int
	boots   []bootTimes
}

func run() error {
	rounds := flag.Int("rounds", 5, "boots per side (interleaved)")
	// sleep=off (the setting) lets an idle guest's clock jump to
	// its next timer; on a loaded host disk and TPM waits then cost
	// arbitrary guest time (seen: +39 s, +168 s) and TPM commands time
	// out. sleep=on counts device waits in real time, CPU in instructions.
	sleep := flag.Bool("icount-sleep", true, "-icount sleep=on (false: sleep=off, guest idle time jumps to the next timer)")
	dir := flag.String("dir", os.Getenv("MCINIT_E2E_DIR"), "work `DIR`, kept and reused between runs (default: a temporary one, removed after a successful run)")
	flag.Parse()
	if *rounds < 1 || *rounds > 50 {
		return fmt.Errorf("-rounds %d: want 1..50", *rounds)
	}
	keep := *dir != ""
	if !keep {
		d, err := os.MkdirTemp("", "mcinit-bench-boot-")
		if err != nil {
			return err
		}
		*dir = d
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	ctx := context.Background()
	envDir := filepath.Join(abs, "amd64")
	if err := os.MkdirAll(envDir, 0o755); err != nil {
		return err
	}
	e, err := fixture.New(ctx, envDir, "amd64", step)
	if err != nil {
		return err
	}

	prod := filepath.Join(envDir, "bench-mcinit-production.cpio.lz4")
	if _, err := os.Stat(prod); err != nil || !keep {
		step("building mcinit's production initramfs (-rescue no)")
		out, err := e.Run(ctx, "initramfs", "-arch", e.Arch, "-policy", filepath.Join(envDir, "policy.toml"),
			"-keys", e.KeysDir, "-kernel", e.ModulesDir, "-rescue", "no", "-o", prod)
		if err != nil {
			return err
		}
		step("%s", strings.TrimSpace(out))
	}
	// The fair baseline loads what mcinit's production boot loads: the
	// board's modules without the development-only ones (and their
	// dependencies). The old one loads every module file of the image.
	prodMods, err := productionModules(e.Board)
	if err != nil {
		return err
	}
	bb := filepath.Join(envDir, "bench-busybox.cpio.gz")
	bbAll := filepath.Join(envDir, "bench-busybox-all.cpio.gz")
	for _, b := range []struct{ out, only string }{{bb, strings.Join(prodMods, " ")}, {bbAll, ""}} {
		step("building a busybox baseline initramfs (bench/busybox/build.sh -M %q)", b.only)
		args := []string{"-m", prod, "-d", e.Disk, "-r", e.RootHash, "-o", b.out}
		if b.only != "" {
			args = append(args, "-M", b.only)
		}
		cmd := exec.CommandContext(ctx, filepath.Join(e.Repo, "bench", "busybox", "build.sh"), args...)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("bench/busybox/build.sh: %w", err)
		}
		step("%s", strings.TrimSpace(string(out)))
	}

	bbMarks := markers{"bbinit:", "bbinit: start", "bbinit: modules loaded", "bbinit: switch_root"}
	sides := []*side{
		{name: "mcinit", initrd: prod, marks: markers{"mcinit:", "mcinit: board:", "mcinit: modules:", "mcinit: handoff:"}},
		{name: "busybox", initrd: bb, marks: bbMarks},
		{name: "bb-all", initrd: bbAll, marks: bbMarks},
	}
	logDir := filepath.Join(abs, "bench-logs")
	var load hostLoad
	for i := 1; i <= *rounds; i++ {
		for _, s := range sides {
			load.sample()
			name := fmt.Sprintf("%s-%d", s.name, i)
			t0 := time.Now()
			bt, err := bootOnce(ctx, e, s, name, logDir, *sleep)
			if err != nil {
				return err
			}
			s.boots = append(s.boots, bt)
			step("round %d/%d %-7s /init→init %4d ms, whole boot %5d ms (guest time; %v wall)",
				i, *rounds, s.name, bt.Interval.Milliseconds(), bt.Whole.Milliseconds(), time.Since(t0).Round(time.Second))
		}
	}

	var sizes []sizes
	for _, s := range sides {
		sz, err := measureSizes(s.initrd)
		if err != nil {
			return err
		}
		sizes = append(sizes, sz)
	}
	kver := filepath.Base(e.ModulesDir)
	clock := "sleep=off"
	if *sleep {
		clock = "sleep=on"
	}
	report(os.Stdout, kver, clock, *rounds, sides, sizes, load)
	if !keep {
		// A failed run returned above, keeping everything for a look.
		return os.RemoveAll(abs)
	}
	fmt.Printf("serial logs: %s\n", logDir)
	return nil
}

// productionModules lists the modules a production boot of the shipped
// board loads (its modules without the development-only ones).
func productionModules(board string) ([]string, error) {
	set, err := boards.Shipped()
	if err != nil {
		return nil, err
	}
	b, ok := set.Get(board)
	if !ok {
		return nil, fmt.Errorf("no shipped board %q", board)
	}
	var names []string
	for _, m := range b.ModulesFor("") {
		names = append(names, m.Name)
	}
	return names, nil
}

// maxAttempts bounds the boots tried for one measurement. With -icount
// sleep=off an idle guest's clock jumps to its next timer, so on a loaded
// host a TPM command to swtpm can time out in guest time (the kernel logs
// "tpm tpm0: Operation Timed out" and the boot is refused, by either side);
// such a boot is retried, and the retries are reported.
const maxAttempts = 3

// bootOnce boots s's initramfs until one boot reaches the real init.
func bootOnce(ctx context.Context, e *fixture.Env, s *side, name, logDir string, sleep bool) (bootTimes, error) {
	var last error
	for a := 1; a <= maxAttempts; a++ {
		m := e.Machine(name, s.initrd, e.Disk, fixture.OtherSerial, "")
		if a > 1 {
			m.Name = fmt.Sprintf("%s-retry%d", name, a-1)
		}
		if sleep {
			m.ExtraArgs = append(m.ExtraArgs, "-icount", "shift=0,sleep=on")
		} else {
			m.Icount = true // -icount shift=0,sleep=off
		}
		m.LogDir = logDir
		m.Timeout = 5 * time.Minute // icount on a loaded host is slow in wall time
		r, err := harness.Boot(ctx, m)
		if err != nil {
			return bootTimes{}, fmt.Errorf("boot %s: %w", m.Name, err)
		}
		bt, err := measure(r.Log, s.marks)
		if err == nil {
			return bt, nil
		}
		cause := "see the log"
		if ln, ok := r.First("refusing to boot"); ok {
			cause = strings.TrimSpace(ln.Text)
		}
		last = fmt.Errorf("boot %s (%s, %s; serial log %s): %w", m.Name, r.Outcome, cause, r.LogPath, err)
		s.retries++
		step("retrying: %v", last)
	}
	return bootTimes{}, last
}

// sizes of one initramfs: as shipped (mcinit: zstd, busybox: gzip),
// uncompressed, and recompressed with
// `gzip -n -9` so both sides are compared with the same compressor.
type sizes struct {
	Gzip, Raw, Gzip9 int64
}

func measureSizes(path string) (sizes, error) {
	gz, err := os.ReadFile(path)
	if err != nil {
		return sizes{}, err
	}
	raw, err := initramfs.Decompress(gz)
	if err != nil {
		return sizes{}, fmt.Errorf("%s: %w", path, err)
	}
	s := sizes{Gzip: int64(len(gz)), Raw: int64(len(raw))}
	cmd := exec.Command("gzip", "-n", "-9")
	cmd.Stdin = bytes.NewReader(raw)
	var n countWriter
	cmd.Stdout = &n
	if err := cmd.Run(); err != nil {
		return sizes{}, fmt.Errorf("gzip -9: %w", err)
	}
	s.Gzip9 = int64(n)
	return s, nil
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

var errNoReport = errors.New("the real init did not report (no kmsg_init_ts)")

// hostLoad is the range of the host's 1-minute load average over the run:
// device waits (disk, swtpm) count in real time, so only an idle host
// gives boots that agree to the millisecond.
type hostLoad struct {
	min, max float64
	n        int
}

func (h *hostLoad) sample() {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return
	}
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if h.n == 0 || v > h.max {
		h.max = v
	}
	h.n++
}

func (h hostLoad) String() string {
	if h.n == 0 {
		return "host load average: unknown"
	}
	s := fmt.Sprintf("host load average (1 min) during the run: %.1f–%.1f", h.min, h.max)
	if h.max > 2 {
		s += " (a busy host: device waits count in real time, so boots spread; compare runs on an idle host)"
	}
	return s
}
