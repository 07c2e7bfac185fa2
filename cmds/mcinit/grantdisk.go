package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mcinit/mcinit/grantpart"
	"github.com/mcinit/mcinit/policy"
	"github.com/mcinit/mcinit/signing"
)

const grantDiskUsage = `usage: mcinit grant write -disk IMG|DEV [-keys DIR] [G.toml ...]
       mcinit grant list -disk IMG|DEV [-keys DIR]

write replaces everything in the disk's mcinit-grants partition with the
given grants (each with its G.toml.sig), so writing none revokes them all.
Nothing else on the disk changes, and the same grants give the same bytes.
With -keys each grant must verify first, as /init will check it.
list prints the grants on the disk, and with -keys whether each verifies.`

// grantEntries reads grant files and their signatures into container
// entries, checking each parses (and verifies, with ks).
func grantEntries(files []string, ks *signing.KeySet) ([]grantpart.Entry, error) {
	var es []grantpart.Entry
	for _, f := range files {
		doc, err := polReadFile(f, policy.MaxGrantSize)
		if err != nil {
			return nil, err
		}
		sig, err := polReadFile(f+".sig", signing.MaxSignatureFile)
		if err != nil {
			return nil, err
		}
		if ks != nil {
			if _, err := policy.VerifyGrant(doc, sig, ks); err != nil {
				return nil, rejected(fmt.Errorf("%s: %w", f, err))
			}
		} else if _, err := policy.ParseGrant(doc); err != nil {
			return nil, rejected(fmt.Errorf("%s: %w", f, err))
		}
		es = append(es, grantpart.Entry{Name: filepath.Base(f), Grant: doc, Sig: sig})
	}
	return es, nil
}

// grantDirFiles lists DIR/*.toml, the grants a directory holds.
func grantDirFiles(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.toml"))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	sort.Strings(files)
	return files, nil
}

func runGrantWrite(args []string) error {
	fs := flag.NewFlagSet("grant write", flag.ContinueOnError)
	disk := fs.String("disk", "", "disk image or block device with an mcinit-grants partition")
	keys := fs.String("keys", "", "key set directory: verify each grant before writing it")
	fs.Usage = func() { fmt.Fprintln(fs.Output(), grantDiskUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if *disk == "" {
		return usagef("grant write: -disk is required")
	}
	var ks *signing.KeySet
	if *keys != "" {
		var err error
		if ks, err = signing.LoadKeySetDir(*keys); err != nil {
			return err
		}
	}
	es, err := grantEntries(fs.Args(), ks)
	if err != nil {
		return err
	}
	c, err := grantpart.Build(es)
	if err != nil {
		return err
	}
	p, err := grantpart.WriteDisk(*disk, c)
	if err != nil {
		return err
	}
	fmt.Printf("%s: partition %d (%s): %d grant(s), %d bytes\n", *disk, p.Number, grantpart.Label, len(es), len(c))
	return nil
}

func runGrantList(args []string) error {
	fs := flag.NewFlagSet("grant list", flag.ContinueOnError)
	disk := fs.String("disk", "", "disk image or block device with an mcinit-grants partition")
	keys := fs.String("keys", "", "key set directory: also verify each grant")
	fs.Usage = func() { fmt.Fprintln(fs.Output(), grantDiskUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if *disk == "" || fs.NArg() != 0 {
		return usagef("usage: mcinit grant list -disk IMG [-keys DIR]")
	}
	var ks *signing.KeySet
	if *keys != "" {
		var err error
		if ks, err = signing.LoadKeySetDir(*keys); err != nil {
			return err
		}
	}
	es, err := grantpart.ReadDisk(*disk)
	if errors.Is(err, grantpart.ErrBlank) {
		fmt.Printf("%s: %s: %v\n", *disk, grantpart.Label, err)
		return nil
	}
	if err != nil {
		return rejected(fmt.Errorf("%s: %s: %w", *disk, grantpart.Label, err))
	}
	bad := 0
	for _, e := range es {
		var g *policy.Grant
		if ks != nil {
			g, err = policy.VerifyGrant(e.Grant, e.Sig, ks)
		} else {
			g, err = policy.ParseGrant(e.Grant)
		}
		switch {
		case err != nil:
			bad++
			fmt.Printf("%s: BAD %v\n", e.Name, err)
		case ks != nil:
			fmt.Printf("%s: OK %s, signed by %s\n", e.Name, g, strings.Join(g.SignedBy, ", "))
		default:
			fmt.Printf("%s: %s (not verified)\n", e.Name, g)
		}
	}
	if bad > 0 {
		return rejected(fmt.Errorf("%d of %d grants do not verify", bad, len(es)))
	}
	return nil
}
