package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// report prints the comparison table (sides[0] is mcinit, sides[1] the
// fair busybox baseline loading the same modules, sides[2] the old one
// loading every module of the image), the per-boot figures and the /init
// breakdown.
func report(w io.Writer, kver, clock string, rounds int, sides []*side, sz []sizes, load hostLoad) {
	mc, bb, all := sides[0], sides[1], sides[2]
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
	med := func(s *side, f func(bootTimes) time.Duration) time.Duration { return median(field(s.boots, f)) }
	interval := func(b bootTimes) time.Duration { return b.Interval }
	whole := func(b bootTimes) time.Duration { return b.Whole }
	start := func(b bootTimes) time.Duration { return b.Start }
	unpack := func(b bootTimes) time.Duration { return b.Unpack }

	fmt.Fprintf(w, "\nBoot benchmark: amd64 q35, kernel %s, same verity disk, swtpm attached\n", kver)
	fmt.Fprintf(w, "QEMU TCG with -icount shift=0,%s (guest time), %d boots per side interleaved, medians\n", clock, rounds)
	fmt.Fprintf(w, "busybox: the fair baseline, loading the modules mcinit's production boot loads; busybox-all: every module of the image\n")
	fmt.Fprintf(w, "%s\n\n", load)
	fmt.Fprintf(w, "| %-40s | %9s | %9s | %11s | %-9s | %-11s | %-16s |\n", "", "mcinit", "busybox", "busybox-all", "÷ busybox", "÷ busybox-all", "target (÷ busybox)")
	fmt.Fprintf(w, "|%s|%s|%s|%s|%s|%s|%s|\n", dash(42), dash(11), dash(11), dash(13), dash(11), dash(15), dash(20))
	row := func(name, a, b, c, r1, r2, t string) {
		fmt.Fprintf(w, "| %-40s | %9s | %9s | %11s | %-9s | %-13s | %-18s |\n", name, a, b, c, r1, r2, t)
	}
	durRow := func(name string, a, b, c time.Duration, target float64) {
		t := ""
		if target > 0 {
			t = fmt.Sprintf("≤ %.2f× %s", target, verdict(float64(a) <= target*float64(b)))
		}
		row(name, ms(a), ms(b), ms(c), ratio(float64(a), float64(b)), ratio(float64(a), float64(c)), t)
	}
	durRow("/init start → real init's first line", med(mc, interval), med(bb, interval), med(all, interval), 0.85)
	mn := func(s *side) time.Duration { return slices.Min(field(s.boots, interval)) }
	durRow("  the same, fastest boot of each side", mn(mc), mn(bb), mn(all), 0)
	durRow("kernel's initramfs unpacking", med(mc, unpack), med(bb, unpack), med(all, unpack), 0.6)
	durRow("kernel start → /init start", med(mc, start), med(bb, start), med(all, start), 0)
	durRow("whole boot (kernel start → real init)", med(mc, whole), med(bb, whole), med(all, whole), 0)
	m, b, c := sz[0], sz[1], sz[2]
	kb := func(n int64) string { return fmt.Sprintf("%d KiB", (n+512)/1024) }
	sizeRow := func(name string, f func(sizes) int64, target bool) {
		t := ""
		if target {
			t = "≤ 1.00× " + verdict(f(m) <= f(b))
		}
		row(name, kb(f(m)), kb(f(b)), kb(f(c)), ratio(float64(f(m)), float64(f(b))), ratio(float64(f(m)), float64(f(c))), t)
	}
	sizeRow("initramfs as built (mcinit lz4, bb gzip)", func(s sizes) int64 { return s.Gzip }, true)
	sizeRow("initramfs recompressed with gzip -n -9", func(s sizes) int64 { return s.Gzip9 }, false)
	sizeRow("initramfs uncompressed (cpio)", func(s sizes) int64 { return s.Raw }, false)

	fmt.Fprintf(w, "\nThe interval by phase (medians; from each side's own kernel-stamped console lines):\n\n")
	fmt.Fprintf(w, "| %-40s | %9s | %9s | %11s | %-9s | %-13s |\n", "", "mcinit", "busybox", "busybox-all", "÷ busybox", "÷ busybox-all")
	fmt.Fprintf(w, "|%s|%s|%s|%s|%s|%s|\n", dash(42), dash(11), dash(11), dash(13), dash(11), dash(15))
	for _, p := range []struct {
		name string
		f    func(bootTimes) time.Duration
	}{
		{"/init's own work (first line + rest)", func(b bootTimes) time.Duration { return b.FirstLine + b.Other }},
		{"/init start → its first line", func(b bootTimes) time.Duration { return b.FirstLine }},
		// mcinit verifies the policy and measures while its modules load,
		// so its row holds that work too (and "the rest" does not).
		{"modules (mcinit: + policy, measuring)", func(b bootTimes) time.Duration { return b.Modules }},
		{"the rest of /init, up to switch_root", func(b bootTimes) time.Duration { return b.Other }},
		{"switch_root → real init's first line", func(b bootTimes) time.Duration { return b.AfterHandoff }},
	} {
		a, b, c := med(mc, p.f), med(bb, p.f), med(all, p.f)
		fmt.Fprintf(w, "| %-40s | %9s | %9s | %11s | %-9s | %-13s |\n", p.name, ms(a), ms(b), ms(c), ratio(float64(a), float64(b)), ratio(float64(a), float64(c)))
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
