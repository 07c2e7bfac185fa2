package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/mcinit/mcinit/signing"
)

func init() {
	register("keygen", "make a signing key pair (NAME.key PKCS#8, NAME.pub PKIX) and print its key ID", runKeygen)
}

func runKeygen(args []string) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	typ := fs.String("type", string(signing.AlgEd25519), "key type: ed25519 or ecdsa-p256")
	out := fs.String("out", "", "write NAME.key (private, mode 0600) and NAME.pub (public)")
	id := fs.String("id", "", "only print the key ID of this PEM public key (e.g. one made by openssl)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: mcinit keygen [-type ed25519|ecdsa-p256] -out NAME\n       mcinit keygen -id KEY.pub")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() != 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *id != "" {
		k, err := polReadPublicKey(*id)
		if err != nil {
			return err
		}
		fmt.Printf("%s  %s  %s\n", k.ID, k.Alg, *id)
		return nil
	}
	if *out == "" {
		return usagef("-out NAME is required")
	}
	priv, err := signing.GenerateKey(signing.Alg(*typ))
	if err != nil {
		return usagef("-type: %v", err)
	}
	pub, err := signing.PublicKeyFrom(priv.Public())
	if err != nil {
		return err
	}
	privPEM, err := signing.MarshalPrivateKeyPEM(priv)
	if err != nil {
		return err
	}
	pubPEM, err := pub.MarshalPEM()
	if err != nil {
		return err
	}
	// Never overwrite a key: losing one may lock a fleet out.
	if err := polWriteNew(*out+".key", privPEM, 0o600); err != nil {
		return err
	}
	if err := polWriteNew(*out+".pub", pubPEM, 0o644); err != nil {
		return errors.Join(err, os.Remove(*out+".key"))
	}
	fmt.Printf("%s  %s  %s.pub\n", pub.ID, pub.Alg, *out)
	return nil
}

// polWriteNew creates name with data, failing if it exists.
func polWriteNew(name string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
