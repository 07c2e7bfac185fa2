// Command init is mcinit's PID 1 in the initramfs. It only strings the
// stages together, in the order of docs/DESIGN: early mounts → command line
// → identity → board (modules) → policy → decision → measurement → root →
// handoff → switch_root. Every refusal is one console line
// "mcinit: refusing to boot: <cause>", measured when the TPM works, then a
// halt. There is no path from a failure to the development profile.
package main

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcinit/mcinit/early"
)

func main() {
	start := bootTime()
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "mcinit: init must run as PID 1")
		os.Exit(1)
	}
	if err := early.Mount(); err != nil {
		fmt.Printf("mcinit: refusing to boot: %v\n", err)
		halt()
	}
	b := &boot{log: early.NewLogger(os.Stdout), start: start}
	err := b.run()
	// run returns only when the boot cannot go on.
	b.refuse(err)
}

// bootTime is CLOCK_BOOTTIME, comparable with kernel log timestamps.
func bootTime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// halt stops the machine for good. PID 1 must never exit (the kernel would
// panic, and some boards reboot on panic into the same refusal loop).
func halt() {
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_HALT)
	for {
		time.Sleep(time.Hour)
	}
}
