package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// report prints the comparison table (sides[0] is mcinit, sides[1] the
// busybox baseline), the per-boot figures and the /init breakdown.
func report(w io.Writer, kver, clock string, rounds int, sides []*side, sz []sizes) {
	mc, bb := sides[0], sides[1]
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/1e6) }
	ratio := func(a, b float64) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f×", a/b)
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	interval := func(b bootTimes) time.Duration { return b.Interval }
	whole := func(b bootTimes) time.Duration { return b.Whole }
	start := func(b bootTimes) time.Duration { return b.Start }
	mi, bi := median(field(mc.boots, interval)), median(field(bb.boots, interval))
	mw, bw := median(field(mc.boots, whole)), median(field(bb.boots, whole))
	msS, bsS := median(field(mc.boots, start)), median(field(bb.boots, start))

	fmt.Fprintf(w, "\nBoot benchmark: amd64 q35, kernel %s, same verity disk, swtpm attached\n", kver)
	fmt.Fprintf(w, "QEMU TCG with -icount shift=0,%s (guest time), %d boots per side interleaved, medians\n\n", clock, rounds)
	fmt.Fprintf(w, "| %-40s | %12s | %12s | %-7s | %-22s |\n", "", "mcinit", "busybox", "ratio", "target")
	fmt.Fprintf(w, "|%s|%s|%s|%s|%s|\n", dash(42), dash(14), dash(14), dash(9), dash(24))
	row := func(name, a, b, r, t string) {
		fmt.Fprintf(w, "| %-40s | %12s | %12s | %-7s | %-22s |\n", name, a, b, r, t)
	}
	row("/init start → real init's first line", ms(mi), ms(bi), ratio(float64(mi), float64(bi)),
		"≤ 0.80× "+verdict(float64(mi) <= 0.8*float64(bi)))
	mn, bn := slices.Min(field(mc.boots, interval)), slices.Min(field(bb.boots, interval))
	row("  the same, fastest boot of each side", ms(mn), ms(bn), ratio(float64(mn), float64(bn)), "")
	mu, bu := median(field(mc.boots, func(b bootTimes) time.Duration { return b.Unpack })), median(field(bb.boots, func(b bootTimes) time.Duration { return b.Unpack }))
	row("kernel's initramfs unpacking", ms(mu), ms(bu), ratio(float64(mu), float64(bu)), "")
	row("kernel start → /init start", ms(msS), ms(bsS), ratio(float64(msS), float64(bsS)), "")
	row("whole boot (kernel start → real init)", ms(mw), ms(bw), ratio(float64(mw), float64(bw)), "")
	m, b := sz[0], sz[1]
	kb := func(n int64) string { return fmt.Sprintf("%d KiB", (n+512)/1024) }
	row("initramfs compressed (as built)", kb(m.Gzip), kb(b.Gzip), ratio(float64(m.Gzip), float64(b.Gzip)),
		"≤ 1.00× "+verdict(m.Gzip <= b.Gzip))
	row("initramfs recompressed with gzip -n -9", kb(m.Gzip9), kb(b.Gzip9), ratio(float64(m.Gzip9), float64(b.Gzip9)), "")
	row("initramfs uncompressed (cpio)", kb(m.Raw), kb(b.Raw), ratio(float64(m.Raw), float64(b.Raw)), "")

	fmt.Fprintf(w, "\nThe interval by phase (medians; from each side's own kernel-stamped console lines):\n\n")
	fmt.Fprintf(w, "| %-40s | %12s | %12s | %-7s |\n", "", "mcinit", "busybox", "ratio")
	fmt.Fprintf(w, "|%s|%s|%s|%s|\n", dash(42), dash(14), dash(14), dash(9))
	for _, p := range []struct {
		name string
		f    func(bootTimes) time.Duration
	}{
		{"/init's own work (first line + rest)", func(b bootTimes) time.Duration { return b.FirstLine + b.Other }},
		{"/init start → its first line", func(b bootTimes) time.Duration { return b.FirstLine }},
		{"module loading (the same .ko files)", func(b bootTimes) time.Duration { return b.Modules }},
		{"the rest of /init, up to switch_root", func(b bootTimes) time.Duration { return b.Other }},
		{"switch_root → real init's first line", func(b bootTimes) time.Duration { return b.AfterHandoff }},
	} {
		a, b := median(field(mc.boots, p.f)), median(field(bb.boots, p.f))
		fmt.Fprintf(w, "| %-40s | %12s | %12s | %-7s |\n", p.name, ms(a), ms(b), ratio(float64(a), float64(b)))
	}

	fmt.Fprintf(w, "\nPer boot, /init start → real init (ms):\n")
	for _, s := range sides {
		var v []string
		for _, b := range s.boots {
			v = append(v, fmt.Sprintf("%.1f", float64(b.Interval)/1e6))
		}
		iv := field(s.boots, interval)
		fmt.Fprintf(w, "  %-8s %s   (min %s, max %s; %d boots retried)\n", s.name, strings.Join(v, "  "),
			ms(slices.Min(iv)), ms(slices.Max(iv)), s.retries)
	}

	fmt.Fprintf(w, "\nmcinit's own figures (median): modules loaded in %s, %s in /init by its clock (start → handoff line)\n",
		ms(median(field(mc.boots, func(b bootTimes) time.Duration { return b.ModulesTime }))),
		ms(median(field(mc.boots, func(b bootTimes) time.Duration { return b.InitTime }))))
	for _, s := range sides {
		mb := medianBoot(s.boots)
		fmt.Fprintf(w, "\nWhere the time goes, %s (the median boot; kernel time after /init start):\n", s.name)
		prev := time.Duration(0)
		for _, st := range mb.Stages {
			fmt.Fprintf(w, "  %+7.1f ms  (+%6.1f)  %s\n", float64(st.At)/1e6, float64(st.At-prev)/1e6, clip(st.Text, 100))
			prev = st.At
		}
		fmt.Fprintf(w, "  %+7.1f ms  (+%6.1f)  real init's first line\n", float64(mb.Interval)/1e6, float64(mb.Interval-prev)/1e6)
	}
}

func dash(n int) string { return strings.Repeat("-", n) }

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
