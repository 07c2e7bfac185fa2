package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/mcinit/mcinit/policy"
)

const policyNewUsage = `usage: mcinit policy new -version N -board B[,B...] -root-hash HEX -data-blocks N [-root-name NAME] [-salt HEX] -out POLICY

Writes a production-only policy with one root (development never), in
the canonical layout of policy.Marshal, for scripts and as a start to
edit; the values are checked as "policy sign" checks them.`

// runPolicyNew writes a minimal policy from flags, so scripts need not
// spell the format themselves.
func runPolicyNew(args []string) error {
	fs := flag.NewFlagSet("policy new", flag.ContinueOnError)
	version := fs.Uint64("version", 0, "policy version (compared with the rollback floor)")
	boards := fs.String("board", "", "boards the policy covers, comma-separated")
	rootHash := fs.String("root-hash", "", "the root's dm-verity root hash (mcinit image prints it)")
	dataBlocks := fs.Uint64("data-blocks", 0, "the root's data block count (mcinit image prints it)")
	rootName := fs.String("root-name", "", "a label for the root, shown in logs")
	salt := fs.String("salt", "", "pin the verity salt (hex)")
	out := fs.String("out", "", "policy file to write (must not exist)")
	fs.Usage = func() { fmt.Fprintln(fs.Output(), policyNewUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() != 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *boards == "" || *rootHash == "" || *out == "" {
		return usagef("-board, -root-hash, -data-blocks and -out are required")
	}
	p := &policy.Policy{
		Format:  policy.FormatVersion,
		Version: *version,
		Boards:  strings.Split(*boards, ","),
		Production: policy.Production{Roots: []policy.Root{{
			Name: *rootName, RootHash: *rootHash, Salt: *salt, DataBlocks: *dataBlocks,
		}}},
	}
	doc, err := policy.Marshal(p)
	if err != nil {
		return usagef("policy new: %v", err)
	}
	if _, err := policy.Parse(doc); err != nil {
		return usagef("policy new: %v", err)
	}
	return polWriteNew(*out, doc, 0o644)
}
