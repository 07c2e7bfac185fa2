// Command testinit is the init of mcinit's test and demo root filesystem.
//
// It runs as PID 1 after mcinit's switch_root (or directly as an
// initramfs /init in harness tests), reports what it sees on the console
// between the lines MCINIT-TEST-BEGIN and MCINIT-TEST-END as key=value lines,
// runs the actions named on the kernel command line
// (mcinit_test.actions=a,b,... or repeated mcinit_test.action=X), and powers
// the machine off (or halts or reboots, when the actions "halt" or "reboot"
// are named). It must never hang: a watchdog powers off regardless.
//
// Report keys: kmsg_init_ts (kernel time of testinit's start), pid1, uptime,
// profile (/run/mcinit/profile or "absent"), dt_compatible, dt_model,
// dmi_sys_vendor, dmi_product_name, run_mcinit (the files under
// /run/mcinit), file.<relpath> (each such file), root.source, root.fstype,
// root.mode (ro|rw), mount.<mountpoint> ("fstype source options"), mounts,
// modules_disabled, root_writable (yes|no) and root_writable_error, marker
// (/var/mcinit-marker at start, or "absent"), action.<i>.<name>[.rc|.out]
// per action, testinit_ms. A value that is not one short printable line is
// sent as <key>.b64=<base64>.
//
// Actions: write-marker[=TEXT], read-file=PATH (sha256 and size, or the
// errno, e.g. EIO), exec=PATH ARGS... (exit status and output),
// write-file=PATH:BASE64 (write a small file, e.g. a sealed blob, into the
// booted system), dump-dir=DIR (every regular file in DIR as
// action.<i>.dump-dir.<name>.b64), insmod=PATH (finit_module: "ok" or
// the errno, e.g. EPERM when module loading is locked), rmmod=NAME
// (delete_module, same result), module=NAME ("live", "absent", or the
// kernel's initstate), sleep=SECONDS, halt, reboot.
//
// Build it static: CGO_ENABLED=0 GOOS=linux go build -trimpath.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Markers framing the report on the console; e2e/harness parses them.
const (
	BeginMarker = "MCINIT-TEST-BEGIN"
	EndMarker   = "MCINIT-TEST-END"
)

// watchdog bounds the whole run, actions included.
const watchdog = 150 * time.Second

func main() {
	start := time.Now()
	pid1 := os.Getpid() == 1
	if pid1 {
		time.AfterFunc(watchdog, func() {
			fmt.Fprintln(os.Stderr, "testinit: watchdog expired, powering off")
			powerOff()
		})
		earlyMounts()
	}
	out := console()
	w := bufio.NewWriter(out)

	s := sys{root: "/", proc: "/proc", sys: "/sys", run: "/run"}
	// Announce ourselves in the kernel log first, so the line carries a
	// kernel timestamp before anything else slows us down.
	kmsgTS, kmsgErr := kmsgStamp("testinit: started")

	// Keep kernel messages from interleaving with the report lines.
	restore := quietConsole(s.proc)

	fmt.Fprintln(w, BeginMarker)
	rep := &reporter{w: w}
	if kmsgErr != nil {
		rep.kv("kmsg_init_ts", "error: "+kmsgErr.Error())
	} else {
		rep.kv("kmsg_init_ts", kmsgTS)
	}
	rep.kv("pid1", fmt.Sprint(pid1))
	s.report(rep)
	cmdline, _ := readSmall(s.proc+"/cmdline", 64<<10)
	end := unix.LINUX_REBOOT_CMD_POWER_OFF
	for i, a := range parseActions(cmdline) {
		switch a {
		case "halt": // end by halting instead of powering off
			end = unix.LINUX_REBOOT_CMD_HALT
			rep.kv("action."+fmt.Sprint(i)+".halt", "at end")
		case "reboot":
			end = unix.LINUX_REBOOT_CMD_RESTART
			rep.kv("action."+fmt.Sprint(i)+".reboot", "at end")
		default:
			runAction(rep, i, a)
		}
	}
	rep.kv("testinit_ms", fmt.Sprint(time.Since(start).Milliseconds()))
	fmt.Fprintln(w, EndMarker)
	w.Flush()
	restore()

	if pid1 {
		reboot(end)
	}
}

// earlyMounts mounts /proc, /sys and /dev unless mcinit's switch_root
// already moved them here. Errors are reported later by what is missing.
func earlyMounts() {
	mounts := []struct{ src, dst, fstype, probe string }{
		{"proc", "/proc", "proc", "/proc/self"},
		{"sysfs", "/sys", "sysfs", "/sys/kernel"},
		{"devtmpfs", "/dev", "devtmpfs", "/dev/null"},
		{"tmpfs", "/run", "tmpfs", ""},
	}
	for _, m := range mounts {
		if m.probe == "" {
			// /run: only if it is not a mountpoint yet (after switch_root it is).
			if isMountpoint("/run") {
				continue
			}
		} else if _, err := os.Stat(m.probe); err == nil {
			continue
		}
		_ = os.MkdirAll(m.dst, 0o755)
		_ = unix.Mount(m.src, m.dst, m.fstype, unix.MS_NOSUID|unix.MS_NOEXEC, "")
	}
}

// isMountpoint compares the device of dir and its parent.
func isMountpoint(dir string) bool {
	var a, b unix.Stat_t
	if unix.Stat(dir, &a) != nil || unix.Stat(dir+"/..", &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

// console returns where the report goes: /dev/console when it opens,
// stdout otherwise (as on a host run).
func console() io.Writer {
	if os.Getpid() == 1 {
		if f, err := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY, 0); err == nil {
			return f
		}
	}
	return os.Stdout
}

// quietConsole lowers the console log level to emergencies only and
// returns a function that restores it.
func quietConsole(proc string) func() {
	path := proc + "/sys/kernel/printk"
	old, err := os.ReadFile(path)
	if err != nil || os.Getpid() != 1 {
		return func() {}
	}
	fields := strings.Fields(string(old))
	if len(fields) == 0 {
		return func() {}
	}
	_ = os.WriteFile(path, []byte("1"), 0)
	return func() { _ = os.WriteFile(path, []byte(fields[0]), 0) }
}

func powerOff() { reboot(unix.LINUX_REBOOT_CMD_POWER_OFF) }

// reboot syncs and ends the machine the way cmd says.
func reboot(cmd int) {
	unix.Sync()
	_ = unix.Reboot(cmd)
	// Reboot only returns on error; never return from PID 1.
	for {
		time.Sleep(time.Hour)
	}
}
