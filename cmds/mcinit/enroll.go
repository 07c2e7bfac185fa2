package main

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mcinit/mcinit/attest"
)

func init() {
	register("enroll", "on a server: bind a device's AK to its EK by credential activation (challenge|check)", runEnroll)
}

const enrollUsage = `usage: mcinit enroll challenge -ek EK.pem -ak AK.pem -out DIR -secret-out FILE
       mcinit enroll check -secret FILE -answer HEX

challenge writes cred.bin and secret.enc into DIR for the device
(mcinit attest -activate DIR) and keeps the secret in FILE (do not send it).
check exits 3 unless the device's answer is that secret, i.e. the AK lives
in the TPM that holds the EK.`

func runEnroll(args []string) error {
	if len(args) == 0 || (args[0] != "challenge" && args[0] != "check") {
		return usagef("%s", enrollUsage)
	}
	fs := flag.NewFlagSet("enroll "+args[0], flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), enrollUsage); fs.PrintDefaults() }
	ekF := fs.String("ek", "", "device EK public key (PEM; check its certificate first)")
	akF := fs.String("ak", "", "device AK public key (PEM)")
	out := fs.String("out", "", "challenge directory to send to the device")
	secretF := fs.String("secret", "", "the challenge's secret (check)")
	secretOut := fs.String("secret-out", "", "where to keep the challenge's secret (challenge)")
	answer := fs.String("answer", "", "the device's answer, hex (check)")
	if err := fs.Parse(args[1:]); err != nil {
		return usagef("%v", err)
	}
	if args[0] == "check" {
		if *secretF == "" || *answer == "" {
			return usagef("enroll check: -secret and -answer are required")
		}
		secret, err := os.ReadFile(*secretF)
		if err != nil {
			return err
		}
		a, err := hex.DecodeString(string(bytes.TrimSpace([]byte(*answer))))
		if err != nil {
			return usagef("enroll check: -answer is not hex")
		}
		if err := attest.CheckActivation(secret, a); err != nil {
			return rejected(err)
		}
		return nil
	}
	if *ekF == "" || *akF == "" || *out == "" || *secretOut == "" {
		return usagef("enroll challenge: -ek, -ak, -out and -secret-out are required")
	}
	akPEM, err := os.ReadFile(*akF)
	if err != nil {
		return err
	}
	ak, err := attest.ParsePublicPEM(akPEM)
	if err != nil {
		return fmt.Errorf("%s: %w", *akF, err)
	}
	ekPEM, err := os.ReadFile(*ekF)
	if err != nil {
		return err
	}
	blk, _ := pem.Decode(ekPEM)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return fmt.Errorf("%s: no PEM PUBLIC KEY block", *ekF)
	}
	ek, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return fmt.Errorf("%s: %w", *ekF, err)
	}
	ch, secret, err := attest.MakeChallenge(ek, ak)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*out, attest.FileCredBlob), ch.CredBlob, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*out, attest.FileEncSecret), ch.EncSecret, 0o644); err != nil {
		return err
	}
	return os.WriteFile(*secretOut, secret, 0o600)
}
