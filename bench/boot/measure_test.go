package main

import (
	"strings"
	"testing"
	"time"

	"github.com/mcinit/mcinit/e2e/harness"
)

const sampleLog = `[    0.000000] Linux version 6.1.0
[    0.566000] Trying to unpack rootfs image as initramfs...
[    0.732000] Freeing initrd memory: 2476K
[    1.780000] Run /init as init process
[    1.900000] mcinit: identity: dmi QEMU
[    1.901000] mcinit: board: qemu-x86_64
[    2.000000] mcinit: modules: 7 loaded in 310ms
[    2.150000] mcinit: handoff: production profile, board qemu-x86_64, root verity:A erofs ro, 370 ms in /init
[    2.250000] testinit: started
MCINIT-TEST-BEGIN
kmsg_init_ts=2.250000
MCINIT-TEST-END
[    2.400000] reboot: Power down
`

var mcMarks = markers{"mcinit:", "mcinit: board:", "mcinit: modules:", "mcinit: handoff:"}

func TestMeasure(t *testing.T) {
	b, err := measure(harness.ParseLog([]byte(sampleLog)), mcMarks)
	if err != nil {
		t.Fatal(err)
	}
	if b.Start != 1780*time.Millisecond || b.Interval != 470*time.Millisecond || b.Whole != 2250*time.Millisecond {
		t.Errorf("start %v interval %v whole %v", b.Start, b.Interval, b.Whole)
	}
	if b.Unpack != 166*time.Millisecond {
		t.Errorf("unpack %v", b.Unpack)
	}
	if b.ModulesLoaded != 7 || b.ModulesTime != 310*time.Millisecond || b.InitTime != 370*time.Millisecond {
		t.Errorf("modules %d in %v, %v in /init", b.ModulesLoaded, b.ModulesTime, b.InitTime)
	}
	if b.FirstLine != 120*time.Millisecond || b.Modules != 99*time.Millisecond ||
		b.Other != 151*time.Millisecond || b.AfterHandoff != 100*time.Millisecond {
		t.Errorf("phases first %v modules %v other %v after handoff %v", b.FirstLine, b.Modules, b.Other, b.AfterHandoff)
	}
	if len(b.Stages) != 4 || b.Stages[0].At != 120*time.Millisecond {
		t.Errorf("stages %+v", b.Stages)
	}
}

func TestMeasureIncomplete(t *testing.T) {
	if _, err := measure(harness.ParseLog([]byte("[    1.0] Run /init as init process\n")), mcMarks); err == nil {
		t.Error("a boot without the real init's report measured")
	}
	if _, err := measure(harness.ParseLog([]byte("kmsg_init_ts=2.0\n")), mcMarks); err == nil {
		t.Error("a boot without the /init line measured")
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{5}, 5},
		{[]time.Duration{9, 1, 5}, 5},
		{[]time.Duration{4, 1, 3, 2}, 2}, // (2+3)/2 in integer nanoseconds
	} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestHostLoadString(t *testing.T) {
	var h hostLoad
	if got := h.String(); got != "host load average: unknown" {
		t.Errorf("no samples: %q", got)
	}
	h = hostLoad{min: 0.3, max: 1.4, n: 3}
	if got := h.String(); got != "host load average (1 min) during the run: 0.3–1.4" {
		t.Errorf("idle: %q", got)
	}
	h.max = 30
	if got := h.String(); !strings.Contains(got, "a busy host") {
		t.Errorf("busy: %q", got)
	}
}
