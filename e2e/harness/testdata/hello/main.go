// Command hello is the harness's trivial /init: one line, then power off.
package main

import (
	"fmt"
	"os"
	"syscall"
)

func main() {
	fmt.Println("HELLO-FROM-INIT")
	if f, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
		fmt.Fprintln(f, "HELLO-CONSOLE")
		f.Close()
	}
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}
