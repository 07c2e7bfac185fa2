package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/mcinit/mcinit/devdiff"
	"github.com/mcinit/mcinit/handoff"
)

func init() {
	register("devdiff", "list and export development changes from an overlay upper", runDevdiff)
}

// Where /init mounts the layers of a development root.
const (
	defaultUpper = handoff.Upper
	defaultLower = handoff.Lower
)

const devdiffUsage = `usage: mcinit devdiff [-upper DIR] [-lower DIR] [-json] [-times] [-q] [-tar FILE | -dir DIR]
       mcinit devdiff apply-deletions -src DIR EXPORT

The first form lists the changes an overlay upper makes to its lower and
optionally exports them; the second removes the paths in an export's
deletion manifest (EXPORT is a -tar file or a -dir directory) from the
source tree DIR, never outside it. See docs/development.md.`

func runDevdiff(args []string) error {
	if len(args) > 0 && args[0] == "apply-deletions" {
		return runApplyDeletions(args[1:])
	}
	fs := flag.NewFlagSet("devdiff", flag.ContinueOnError)
	upper := fs.String("upper", defaultUpper, "overlay upper `dir`ectory (the development changes)")
	lower := fs.String("lower", defaultLower, "overlay lower `dir`ectory (the original image)")
	asJSON := fs.Bool("json", false, "list as JSON lines")
	times := fs.Bool("times", false, "report mtime-only changes of non-directories")
	quiet := fs.Bool("q", false, "no listing (with -tar or -dir)")
	tarOut := fs.String("tar", "", "export the changes as a PAX tar `file` (- for stdout; the listing then goes to stderr)")
	dirOut := fs.String("dir", "", "export the changes into a new `dir`ectory")
	fs.Usage = func() { fmt.Fprintln(fs.Output(), devdiffUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *tarOut != "" && *dirOut != "" {
		return usagef("-tar and -dir are exclusive")
	}

	if *upper == defaultUpper {
		if _, err := os.Stat(defaultUpper); err != nil {
			return fmt.Errorf("%s: %w (not a booted development system? give -upper and -lower)", defaultUpper, errors.Unwrap(err))
		}
	}

	var adders []func(*devdiff.Change) error
	listTo := io.Writer(os.Stdout)
	if *tarOut == "-" {
		listTo = os.Stderr
	}
	bw := bufio.NewWriter(listTo)
	if !*quiet {
		adders = append(adders, devdiff.NewLister(bw, *asJSON).Add)
	}
	var closeExport func() error
	var abort func()
	switch {
	case *tarOut == "-":
		out := bufio.NewWriterSize(os.Stdout, 1<<20)
		tw, err := devdiff.NewTarWriter(out)
		if err != nil {
			return err
		}
		adders = append(adders, tw.Add)
		closeExport = func() error {
			if err := tw.Close(); err != nil {
				return err
			}
			return out.Flush()
		}
	case *tarOut != "":
		f, err := os.OpenFile(*tarOut, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		out := bufio.NewWriterSize(f, 1<<20)
		tw, err := devdiff.NewTarWriter(out)
		if err != nil {
			f.Close()
			return err
		}
		adders = append(adders, tw.Add)
		closeExport = func() error {
			if err := tw.Close(); err != nil {
				return err
			}
			if err := out.Flush(); err != nil {
				return err
			}
			return f.Close()
		}
		abort = func() { f.Close(); os.Remove(*tarOut) }
	case *dirOut != "":
		dw, err := devdiff.NewDirWriter(*dirOut)
		if err != nil {
			return err
		}
		adders = append(adders, dw.Add)
		closeExport = dw.Close
	}

	err := devdiff.Walk(*upper, *lower, devdiff.Options{CompareTimes: *times}, func(c *devdiff.Change) error {
		for _, add := range adders {
			if err := add(c); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && closeExport != nil {
		err = closeExport()
	}
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if err != nil && abort != nil {
		abort()
	}
	return err
}

func runApplyDeletions(args []string) error {
	fs := flag.NewFlagSet("devdiff apply-deletions", flag.ContinueOnError)
	src := fs.String("src", "", "source tree `dir`ectory to remove the deleted paths from")
	fs.Usage = func() { fmt.Fprintln(fs.Output(), devdiffUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if *src == "" || fs.NArg() != 1 {
		return usagef("need -src DIR and one EXPORT (a -tar file or a -dir directory)")
	}
	m, err := devdiff.OpenManifest(fs.Arg(0))
	if err != nil {
		return err
	}
	defer m.Close()
	n, err := devdiff.RemoveDeleted(*src, m)
	if err != nil {
		return err
	}
	fmt.Printf("removed %d paths from %s\n", n, *src)
	return nil
}
