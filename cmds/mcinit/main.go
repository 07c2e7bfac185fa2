// Command mcinit is the host-side tool: keys, policies, grants, identity,
// dry-run decisions, verity images, disk images, initramfs builds, PCR
// prediction and attestation. Each verb lives in its own file and registers
// itself in verbs.
//
// Exit codes: 0 success; 1 an error (bad input, I/O); 2 usage; 3 a
// verification or decision rejected the input (bad signature, refused boot,
// failed attestation); 4 an attestation without a firmware chain
// (unanchored) where one is required; 5 missing, oversized or unreadable
// attestation evidence.
package main

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
)

const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitRejected = 3
	// exitUnanchored and exitEvidence are used by verify only.
	exitUnanchored = 4
	exitEvidence   = 5
)

// verb is one `mcinit <verb>` subcommand.
type verb struct {
	summary string
	run     func(args []string) error
}

// verbs is filled by the init functions of the verb files.
var verbs = map[string]verb{}

func register(name, summary string, run func(args []string) error) {
	if _, dup := verbs[name]; dup {
		panic("mcinit: verb registered twice: " + name)
	}
	verbs[name] = verb{summary: summary, run: run}
}

// usageError makes main exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// rejectedError makes main exit 3: the input was well-formed but rejected.
type rejectedError struct{ err error }

func (e rejectedError) Error() string { return e.err.Error() }
func (e rejectedError) Unwrap() error { return e.err }

func rejected(err error) error { return rejectedError{err} }

// classError makes main exit with its code (verify's unanchored and
// evidence classes).
type classError struct {
	err  error
	code int
}

func (e classError) Error() string { return e.err.Error() }
func (e classError) Unwrap() error { return e.err }

func usage() {
	fmt.Fprintln(os.Stderr, "usage: mcinit <verb> [flags] [args]\n\nverbs:")
	names := make([]string, 0, len(verbs))
	for n := range verbs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-12s %s\n", n, verbs[n].summary)
	}
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		os.Exit(exitUsage)
	}
	v, ok := verbs[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "mcinit: unknown verb %q (try mcinit help)\n", os.Args[1])
		os.Exit(exitUsage)
	}
	os.Exit(exitCode(os.Args[1], v.run(os.Args[2:])))
}

func exitCode(name string, err error) int {
	if err == nil {
		return exitOK
	}
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	fmt.Fprintf(os.Stderr, "mcinit %s: %s\n", name, msg)
	var ue usageError
	var re rejectedError
	var ce classError
	switch {
	case errors.As(err, &ce):
		return ce.code
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &re):
		return exitRejected
	default:
		return exitError
	}
}
