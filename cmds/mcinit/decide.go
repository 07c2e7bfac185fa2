package main

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mcinit/mcinit/cmdline"
	"github.com/mcinit/mcinit/decide"
	"github.com/mcinit/mcinit/grantpart"
	"github.com/mcinit/mcinit/policy"
	"github.com/mcinit/mcinit/signing"
)

func init() {
	register("decide", "dry-run the boot decision for a policy, board identity and command line", runDecide)
}

type polStringList []string

func (l *polStringList) String() string     { return strings.Join(*l, ",") }
func (l *polStringList) Set(s string) error { *l = append(*l, s); return nil }

func runDecide(args []string) error {
	fs := flag.NewFlagSet("decide", flag.ContinueOnError)
	pol := fs.String("policy", "", "policy file")
	sigFile := fs.String("sig", "", "policy signature file (default POLICY.sig)")
	keys := fs.String("keys", "", "key set directory (*.pem and keyset.toml)")
	board := fs.String("board", "", "board name matched from boards/ (generic-<arch> when none matched)")
	device := fs.String("device", "", "device ID (serial number or DMI system UUID)")
	line := fs.String("cmdline", "", "kernel command line")
	lineFile := fs.String("cmdline-file", "", "read the kernel command line from this file (e.g. /proc/cmdline)")
	floor := fs.String("floor", "", "rollback floor read from the TPM (lowest acceptable policy version); unset = none recorded")
	now := fs.String("now", "", nowUsage)
	var grants polStringList
	fs.Var(&grants, "grant", "development grant G.toml (signature in G.toml.sig); repeatable")
	grantsDisk := fs.String("grants-disk", "", "also the grants in this disk image's (or device's) mcinit-grants partition, as /init reads them")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: mcinit decide -policy P [-sig S] -keys DIR -board B [-device ID] [-cmdline LINE] [-grant G.toml ...] [-grants-disk IMG] [-floor N] [-now TIME]\n\nexit 0: the device boots (profile printed); 3: refused (the refusal line printed)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() != 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *pol == "" || *keys == "" {
		return usagef("-policy and -keys are required")
	}
	if *line != "" && *lineFile != "" {
		return usagef("give -cmdline or -cmdline-file, not both")
	}
	in := decide.Input{Board: *board, DeviceID: *device}
	var err error
	if in.Now, err = deviceClock(*now); err != nil {
		return err
	}
	if *floor != "" {
		n, err := strconv.ParseUint(*floor, 10, 64)
		if err != nil {
			return usagef("-floor: %q is not a version number", *floor)
		}
		in.Floor, in.FloorKnown = n, true
	}
	raw := *line
	if *lineFile != "" {
		b, err := polReadFile(*lineFile, cmdline.MaxSize)
		if err != nil {
			return err
		}
		raw = string(b)
	}
	cl, err := cmdline.Parse(raw)
	if err != nil {
		return fmt.Errorf("-cmdline: %w", err)
	}
	in.Cmdline = cl

	ks, err := signing.LoadKeySetDir(*keys)
	if err != nil {
		return err
	}
	// A policy that fails verification is not a CLI error: it is an input
	// to the decision, which refuses, exactly as at boot.
	in.Policy, err = polVerify(*pol, *sigFile, *keys)
	var re rejectedError
	if errors.As(err, &re) {
		in.PolicyErr = re.err
	} else if err != nil {
		return err
	}
	for _, g := range grants {
		v, err := polVerifyGrant(g, "", ks)
		if err != nil {
			fmt.Printf("warning: grant ignored: %v\n", err)
			continue
		}
		in.Grants = append(in.Grants, v)
	}
	if *grantsDisk != "" {
		es, err := grantpart.ReadDisk(*grantsDisk)
		switch {
		case errors.Is(err, grantpart.ErrBlank):
		case err != nil:
			fmt.Printf("warning: grants partition %s ignored: %v\n", *grantsDisk, err)
		}
		for _, e := range es {
			v, err := policy.VerifyGrant(e.Grant, e.Sig, ks)
			if err != nil {
				fmt.Printf("warning: grant ignored: %s %q: %v\n", *grantsDisk, e.Name, err)
				continue
			}
			in.Grants = append(in.Grants, v)
		}
	}

	d, err := decide.Decide(in)
	var ref *decide.Refusal
	if errors.As(err, &ref) {
		fmt.Printf("mcinit: refusing to boot: %s\n", ref.Cause)
		return rejected(err)
	}
	if err != nil {
		return err
	}
	fmt.Printf("profile  %s\nrequest  %s\nreason   %s\nfacts    %s\n", d.Profile, d.Request, d.Reason, d.Canonical())
	fmt.Printf("policy   version %d, sha256 %x, signed by %d of threshold %d\n", d.PolicyVersion, in.Policy.Digest, len(in.Policy.SignedBy), ks.Threshold)
	if d.Grant != nil {
		fmt.Printf("grant    %s\n", d.Grant)
	}
	if d.Debug || d.Shell {
		fmt.Printf("flags    debug=%t shell=%t\n", d.Debug, d.Shell)
	}
	for _, w := range d.Warnings {
		fmt.Printf("warning: %s\n", w)
	}
	return nil
}

// nowUsage documents -now for decide and predict.
const nowUsage = "the device's clock, RFC 3339 (default: this host's clock; \"unset\": a clock that was never set)"

// deviceClock parses -now: the clock /init would read, which only grants'
// not_after consult.
func deviceClock(s string) (time.Time, error) {
	switch s {
	case "":
		return time.Now(), nil
	case "unset":
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, usagef("-now: %q is not an RFC 3339 time", s)
	}
	return t, nil
}
