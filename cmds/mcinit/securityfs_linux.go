package main

import (
	"os"
	"syscall"
)

// mountSecurityFS mounts securityfs at /sys/kernel/security when nothing is
// there yet (the firmware log lives in it); errors are ignored, a missing
// log then reads as none.
func mountSecurityFS() {
	const dir = "/sys/kernel/security"
	if ents, err := os.ReadDir(dir); err != nil || len(ents) > 0 {
		return
	}
	_ = syscall.Mount("securityfs", dir, "securityfs", 0, "")
}
