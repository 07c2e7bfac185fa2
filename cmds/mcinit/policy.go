package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/mcinit/mcinit/internal/boundedfile"
	"github.com/mcinit/mcinit/policy"
	"github.com/mcinit/mcinit/signing"
)

func init() {
	register("policy", "write, sign, verify or show a boot policy (new|sign|verify|show)", runPolicy)
}

const policyUsage = `usage: mcinit policy new -version N -board B[,B...] -root-hash HEX -data-blocks N [-root-name NAME] [-salt HEX] -out POLICY
       mcinit policy sign -key KEY.key [-sig FILE] POLICY
       mcinit policy sign -raw-signature SIG.bin -pubkey KEY.pub [-sig FILE] POLICY
       mcinit policy verify -keys DIR [-sig FILE] POLICY
       mcinit policy show [-keys DIR [-sig FILE]] POLICY

sign appends one signature line to FILE (default POLICY.sig); run it once
per key. -raw-signature takes a signature made elsewhere over the exact
file bytes (openssl pkeyutl -sign -rawin for Ed25519, openssl dgst -sha256
-sign for ECDSA P-256), checks it against -pubkey and appends it.`

func runPolicy(args []string) error {
	if len(args) == 0 {
		return usagef("%s", policyUsage)
	}
	switch args[0] {
	case "new":
		return runPolicyNew(args[1:])
	case "sign":
		return polSignCmd("policy sign", args[1:], func(b []byte) error { _, err := policy.Parse(b); return err }, policy.MaxPolicySize)
	case "verify":
		return runPolicyVerify(args[1:])
	case "show":
		return runPolicyShow(args[1:])
	}
	return usagef("unknown policy subcommand %q (new, sign, verify, show)", args[0])
}

// polSignCmd implements `policy sign` and `grant sign`: check lets only a
// well-formed document be signed.
func polSignCmd(name string, args []string, check func([]byte) error, limit int64) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	keyFile := fs.String("key", "", "private key (PKCS#8 PEM, as from mcinit keygen or openssl genpkey)")
	raw := fs.String("raw-signature", "", "raw signature made elsewhere over the exact file bytes")
	pubFile := fs.String("pubkey", "", "public key (PEM) of the -raw-signature")
	sigFile := fs.String("sig", "", "signature file to append to (default DOCUMENT.sig)")
	fs.Usage = func() { fmt.Fprintln(fs.Output(), policyUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() != 1 {
		return usagef("%s: want exactly one document", name)
	}
	doc := fs.Arg(0)
	if (*keyFile == "") == (*raw == "") {
		return usagef("%s: give either -key or -raw-signature with -pubkey", name)
	}
	if *raw != "" && *pubFile == "" {
		return usagef("%s: -raw-signature needs -pubkey", name)
	}
	msg, err := polReadFile(doc, limit)
	if err != nil {
		return err
	}
	if err := check(msg); err != nil {
		return fmt.Errorf("%s: %w", doc, err)
	}
	var sig signing.Signature
	if *keyFile != "" {
		kb, err := polReadFile(*keyFile, 16<<10)
		if err != nil {
			return err
		}
		priv, err := signing.ParsePrivateKeyPEM(kb)
		if err != nil {
			return fmt.Errorf("%s: %w", *keyFile, err)
		}
		if sig, err = signing.Sign(priv, msg); err != nil {
			return fmt.Errorf("%s: %w", *keyFile, err)
		}
	} else {
		pub, err := polReadPublicKey(*pubFile)
		if err != nil {
			return err
		}
		rs, err := polReadFile(*raw, 1<<10)
		if err != nil {
			return err
		}
		if sig, err = signing.SignatureFromRaw(pub, msg, rs); err != nil {
			return rejected(fmt.Errorf("%s: %w", *raw, err))
		}
	}
	out := *sigFile
	if out == "" {
		out = doc + ".sig"
	}
	if err := polAppendSignature(out, sig); err != nil {
		return err
	}
	fmt.Printf("signed %s with %s key %s -> %s\n", doc, sig.Alg, sig.KeyID, out)
	return nil
}

// polAppendSignature adds a line to a signature file, replacing the file
// atomically; the existing content must parse and must not hold this key.
func polAppendSignature(name string, s signing.Signature) error {
	var sigs []signing.Signature
	old, err := polReadFile(name, signing.MaxSignatureFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		if sigs, err = signing.ParseSignatures(old); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	for _, o := range sigs {
		if o.KeyID == s.KeyID {
			return fmt.Errorf("%s: already signed by key %s", name, s.KeyID)
		}
	}
	data := signing.FormatSignatures(append(sigs, s))
	return writeFileAtomic(name, data)
}

func runPolicyVerify(args []string) error {
	fs := flag.NewFlagSet("policy verify", flag.ContinueOnError)
	keys := fs.String("keys", "", "key set directory (*.pem and keyset.toml)")
	sigFile := fs.String("sig", "", "signature file (default POLICY.sig)")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() != 1 || *keys == "" {
		return usagef("usage: mcinit policy verify -keys DIR [-sig FILE] POLICY")
	}
	v, err := polVerify(fs.Arg(0), *sigFile, *keys)
	if err != nil {
		return err
	}
	fmt.Printf("OK %s: version %d, sha256 %x, signed by %d key(s): %s\n",
		fs.Arg(0), v.Policy.Version, v.Digest, len(v.SignedBy), strings.Join(v.SignedBy, ", "))
	for _, u := range v.Unknown {
		fmt.Printf("note: ignored a signature by unknown key %s\n", u)
	}
	return nil
}

// polVerify reads and verifies a policy; verification failures are
// rejections (exit 3), I/O failures plain errors.
func polVerify(doc, sigFile, keysDir string) (*policy.Verified, error) {
	if sigFile == "" {
		sigFile = doc + ".sig"
	}
	ks, err := signing.LoadKeySetDir(keysDir)
	if err != nil {
		return nil, err
	}
	msg, err := polReadFile(doc, policy.MaxPolicySize)
	if err != nil {
		return nil, err
	}
	sig, err := polReadFile(sigFile, signing.MaxSignatureFile)
	if err != nil {
		return nil, err
	}
	v, err := policy.VerifyPolicy(msg, sig, ks)
	if err != nil {
		return nil, rejected(fmt.Errorf("%s: %w", doc, err))
	}
	return v, nil
}

func runPolicyShow(args []string) error {
	fs := flag.NewFlagSet("policy show", flag.ContinueOnError)
	keys := fs.String("keys", "", "verify against this key set first")
	sigFile := fs.String("sig", "", "signature file (default POLICY.sig)")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() != 1 {
		return usagef("usage: mcinit policy show [-keys DIR [-sig FILE]] POLICY")
	}
	var p *policy.Policy
	if *keys != "" {
		v, err := polVerify(fs.Arg(0), *sigFile, *keys)
		if err != nil {
			return err
		}
		fmt.Printf("# verified: sha256 %x, signed by %s\n", v.Digest, strings.Join(v.SignedBy, ", "))
		p = v.Policy
	} else {
		msg, err := polReadFile(fs.Arg(0), policy.MaxPolicySize)
		if err != nil {
			return err
		}
		if p, err = policy.Parse(msg); err != nil {
			return rejected(fmt.Errorf("%s: %w", fs.Arg(0), err))
		}
		fmt.Println("# NOT verified (no -keys)")
	}
	text, err := policy.Marshal(p.Normalized())
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(text)
	return err
}

// polReadFile reads a bounded regular file; errors name it.
func polReadFile(name string, limit int64) ([]byte, error) { return boundedfile.ReadPath(name, limit) }

func polReadPublicKey(name string) (*signing.PublicKey, error) {
	b, err := polReadFile(name, 16<<10)
	if err != nil {
		return nil, err
	}
	k, err := signing.ParsePublicKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return k, nil
}
