package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/mcinit/mcinit/rollback"
	"github.com/mcinit/mcinit/tpmdev"
)

func init() {
	register("rollback", "provision or show the TPM rollback floor (provision|show)", runRollback)
}

const rollbackUsage = `usage: mcinit rollback provision [-index 0x01504d43] [-owner-auth-file F] [-initial VERSION] [-tpm DEV]
       mcinit rollback show [-index 0x01504d43] [-tpm DEV]

provision defines the floor NV index (owner authorisation); show prints the
floor ("unset" before the first production boot) and whether it is locked.`

func runRollback(args []string) error {
	if len(args) == 0 || (args[0] != "provision" && args[0] != "show") {
		return usagef("%s", rollbackUsage)
	}
	fs := flag.NewFlagSet("rollback "+args[0], flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), rollbackUsage); fs.PrintDefaults() }
	idxS := fs.String("index", fmt.Sprintf("%#x", rollback.DefaultIndex), "NV index")
	dev := fs.String("tpm", "", "TPM device or tcp:HOST:PORT")
	authF := fs.String("owner-auth-file", "", "file holding the owner hierarchy password (default empty)")
	initial := fs.Uint64("initial", 0, "initial floor (0 = written by the first production boot)")
	if err := fs.Parse(args[1:]); err != nil {
		return usagef("%v", err)
	}
	idx, err := strconv.ParseUint(*idxS, 0, 32)
	if err != nil || fs.NArg() != 0 {
		return usagef("rollback: -index %q: want an NV index like 0x01504d43", *idxS)
	}
	tpm, err := tpmdev.OpenAt(*dev)
	if err != nil {
		return err
	}
	defer tpm.Close()
	if args[0] == "show" {
		floor, written, err := rollback.ReadFloor(tpm, uint32(idx))
		if err != nil {
			return err
		}
		if !written {
			fmt.Println("floor unset")
			return nil
		}
		fmt.Printf("floor %d\n", floor)
		return nil
	}
	var auth []byte
	if *authF != "" {
		b, err := os.ReadFile(*authF)
		if err != nil {
			return err
		}
		auth = []byte(strings.TrimRight(string(b), "\n"))
	}
	return rollback.Provision(tpm, uint32(idx), auth, *initial)
}
