package main

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcinit/mcinit/e2e/harness"
)

// The kernel's line when it starts the initramfs's /init.
const runInitLine = "Run /init as init process"

// bootTimes is what one boot measured, in guest (kernel) time.
type bootTimes struct {
	Start    time.Duration // kernel time of "Run /init as init process"
	Interval time.Duration // Start → the real init's first kmsg line
	Whole    time.Duration // kernel start → the real init's first kmsg line
	// Unpack is the kernel's initramfs unpacking (decompression and
	// extraction), when both of its lines are in the log.
	Unpack time.Duration
	// Stages are the initramfs's own kernel-stamped lines (marker prefix),
	// relative to Start.
	Stages []stage
	// Phases, from the side's own lines (see markers): /init start → its
	// first line (runtime start), module loading, the rest of /init's
	// work, and handoff (switch_root) → the real init's first line.
	FirstLine, Modules, Other, AfterHandoff time.Duration
	// mcinit's self-reported figures, when its lines carry them.
	ModulesLoaded int
	ModulesTime   time.Duration
	InitTime      time.Duration
}

type stage struct {
	At   time.Duration
	Text string
}

var (
	modulesRE = regexp.MustCompile(`mcinit: modules: (\d+) loaded in ([0-9.]+[a-zµ]+)`)
	handoffRE = regexp.MustCompile(`(\d+) ms in /init`)
)

// markers name one side's console lines: the prefix of all of them, the
// lines just before and just after module loading, and the last line
// before switch_root.
type markers struct {
	Prefix, ModulesStart, ModulesDone, Handoff string
}

// measure extracts the boot's times from its parsed serial log.
func measure(l *harness.Log, mk markers) (bootTimes, error) {
	var b bootTimes
	start, ok := l.FirstStamped(runInitLine)
	if !ok {
		return b, fmt.Errorf("no %q line", runInitLine)
	}
	end, ok := l.KmsgInitTS()
	if !ok {
		return b, errNoReport
	}
	if end < start.TS {
		return b, fmt.Errorf("the real init's stamp %v precedes /init's start %v", end, start.TS)
	}
	b.Start, b.Interval, b.Whole = start.TS, end-start.TS, end
	if u0, ok := l.FirstStamped("Trying to unpack rootfs image as initramfs"); ok {
		if u1, ok := l.FirstStamped("Freeing initrd memory"); ok && u1.TS >= u0.TS {
			b.Unpack = u1.TS - u0.TS
		}
	}
	modStart := time.Duration(-1)
	for _, ln := range l.Lines {
		if !ln.HasTS || ln.TS < start.TS {
			continue
		}
		text := strings.TrimSpace(ln.Text)
		if !strings.HasPrefix(text, mk.Prefix) {
			continue
		}
		at := ln.TS - start.TS
		b.Stages = append(b.Stages, stage{At: at, Text: text})
		if len(b.Stages) == 1 {
			b.FirstLine = at
		}
		switch {
		case strings.HasPrefix(text, mk.ModulesStart) && modStart < 0:
			modStart = at
		case strings.HasPrefix(text, mk.ModulesDone) && modStart >= 0 && b.Modules == 0:
			b.Modules = at - modStart
		case strings.HasPrefix(text, mk.Handoff) && b.AfterHandoff == 0:
			b.AfterHandoff = b.Interval - at
			b.Other = at - b.FirstLine - b.Modules
		}
		if m := modulesRE.FindStringSubmatch(text); m != nil {
			b.ModulesLoaded, _ = strconv.Atoi(m[1])
			b.ModulesTime, _ = time.ParseDuration(m[2])
		}
		if m := handoffRE.FindStringSubmatch(text); m != nil {
			n, _ := strconv.Atoi(m[1])
			b.InitTime = time.Duration(n) * time.Millisecond
		}
	}
	return b, nil
}

// median of ds (the mean of the middle two for an even count).
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// medianBoot is the boot whose interval is the median (the lower middle
// for an even count), to show a representative breakdown.
func medianBoot(bs []bootTimes) bootTimes {
	s := slices.Clone(bs)
	slices.SortFunc(s, func(a, b bootTimes) int { return int(a.Interval - b.Interval) })
	return s[(len(s)-1)/2]
}

func field(bs []bootTimes, f func(bootTimes) time.Duration) []time.Duration {
	out := make([]time.Duration, len(bs))
	for i, b := range bs {
		out[i] = f(b)
	}
	return out
}
