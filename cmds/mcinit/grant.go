package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/mcinit/mcinit/policy"
	"github.com/mcinit/mcinit/signing"
)

func init() {
	register("grant", "write and sign a per-device development grant (or: grant sign|verify|write|list)", runGrant)
}

const grantUsage = `usage: mcinit grant -board B -device ID [-min-version N] -max-version N [-not-after TIME] -key KEY.key -out G.toml
       mcinit grant sign -key KEY.key | -raw-signature SIG.bin -pubkey KEY.pub [-sig FILE] G.toml
       mcinit grant verify -keys DIR [-sig FILE] G.toml
       mcinit grant write -disk IMG|DEV [-keys DIR] [G.toml ...]
       mcinit grant list -disk IMG|DEV [-keys DIR]

The grant is written to G.toml and signed into G.toml.sig; add the
signatures of further keys with "grant sign" until the key set's threshold
is met. "grant write" puts grants in a disk's mcinit-grants partition,
where /init reads them too: unlocking a unit rebuilds nothing.`

func runGrant(args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "sign":
			return polSignCmd("grant sign", args[1:], func(b []byte) error { _, err := policy.ParseGrant(b); return err }, policy.MaxGrantSize)
		case "verify":
			return runGrantVerify(args[1:])
		case "write":
			return runGrantWrite(args[1:])
		case "list":
			return runGrantList(args[1:])
		}
	}
	fs := flag.NewFlagSet("grant", flag.ContinueOnError)
	board := fs.String("board", "", "board name (from boards/)")
	device := fs.String("device", "", "device ID: serial number or DMI system UUID, as mcinit identify prints it")
	minV := fs.String("min-version", "", "lowest policy version the grant is valid for")
	maxV := fs.String("max-version", "", "highest policy version the grant is valid for (required: a grant must end)")
	notAfter := fs.String("not-after", "", "RFC 3339 time after which the device's clock voids the grant (an extra restriction; the clock is untrusted)")
	key := fs.String("key", "", "private key to sign with")
	out := fs.String("out", "", "grant file to write (must not exist); the signature goes to OUT.sig")
	fs.Usage = func() { fmt.Fprintln(fs.Output(), grantUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() != 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *board == "" || *device == "" || *key == "" || *out == "" || *maxV == "" {
		return usagef("-board, -device, -max-version, -key and -out are required")
	}
	g := &policy.Grant{Format: policy.GrantFormat, Board: *board, DeviceID: *device, NotAfter: *notAfter}
	for _, v := range []struct {
		flag, val string
		dst       **uint64
	}{{"min-version", *minV, &g.MinPolicyVersion}, {"max-version", *maxV, &g.MaxPolicyVersion}} {
		if v.val == "" {
			continue
		}
		n, err := strconv.ParseUint(v.val, 10, 63)
		if err != nil {
			return usagef("-%s: %q is not a version number", v.flag, v.val)
		}
		*v.dst = &n
	}
	body, err := policy.MarshalGrant(g)
	if err != nil {
		return usagef("grant: %v", err)
	}
	doc := append([]byte("# mcinit development grant: development allowed on this one device.\n"), body...)
	// Check before writing: the flags may spell no valid grant.
	if _, err := policy.ParseGrant(doc); err != nil {
		return usagef("grant: %v", err)
	}
	if err := polWriteNew(*out, doc, 0o644); err != nil {
		return err
	}
	return polSignCmd("grant", []string{"-key", *key, *out}, func([]byte) error { return nil }, policy.MaxGrantSize)
}

func runGrantVerify(args []string) error {
	fs := flag.NewFlagSet("grant verify", flag.ContinueOnError)
	keys := fs.String("keys", "", "key set directory (*.pem and keyset.toml)")
	sigFile := fs.String("sig", "", "signature file (default G.toml.sig)")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() != 1 || *keys == "" {
		return usagef("usage: mcinit grant verify -keys DIR [-sig FILE] G.toml")
	}
	ks, err := signing.LoadKeySetDir(*keys)
	if err != nil {
		return err
	}
	g, err := polVerifyGrant(fs.Arg(0), *sigFile, ks)
	if err != nil {
		return err
	}
	fmt.Printf("OK %s: %s, signed by %s\n", fs.Arg(0), g, strings.Join(g.SignedBy, ", "))
	return nil
}

func polVerifyGrant(doc, sigFile string, ks *signing.KeySet) (*policy.Grant, error) {
	if sigFile == "" {
		sigFile = doc + ".sig"
	}
	msg, err := polReadFile(doc, policy.MaxGrantSize)
	if err != nil {
		return nil, err
	}
	sig, err := polReadFile(sigFile, signing.MaxSignatureFile)
	if err != nil {
		return nil, err
	}
	g, err := policy.VerifyGrant(msg, sig, ks)
	if err != nil {
		return nil, rejected(fmt.Errorf("%s: %w", doc, err))
	}
	return g, nil
}
