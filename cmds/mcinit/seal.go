package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/mcinit/mcinit/attest"
	"github.com/mcinit/mcinit/tpmdev"
)

func init() {
	register("unseal", "on the device: unseal a tpm2-tools sealed object bound to mcinit's PCR", runUnseal)
}

const unsealUsage = `usage: mcinit unseal -pub F -priv F [-pcr 13] [-bank sha256] [-tpm DEV|tcp:HOST:PORT] [-o FILE]

Loads an object made by tpm2_create -u F -r F under the seal parent
(see docs/measurements.md) and unseals it with a TPM2_PolicyPCR session.
Fails (exit 1) when the PCR does not hold the value the object was sealed to.`

func runUnseal(args []string) error {
	fs := flag.NewFlagSet("unseal", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), unsealUsage); fs.PrintDefaults() }
	pubF := fs.String("pub", "", "TPM2B_PUBLIC file (tpm2_create -u)")
	privF := fs.String("priv", "", "TPM2B_PRIVATE file (tpm2_create -r)")
	pcr := fs.Int("pcr", 13, "PCR the object is sealed to")
	bank := fs.String("bank", "sha256", "PCR bank of the policy")
	dev := fs.String("tpm", "", "TPM device or tcp:HOST:PORT")
	out := fs.String("o", "-", "write the secret here")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if *pubF == "" || *privF == "" || fs.NArg() != 0 || *pcr < 0 || *pcr > 23 {
		return usagef("unseal: -pub and -priv are required, -pcr 0-23")
	}
	bl, err := bankList(*bank)
	if err != nil || len(bl) != 1 {
		return usagef("unseal: -bank: want one of sha1, sha256, sha384, sha512")
	}
	pub, err := os.ReadFile(*pubF)
	if err != nil {
		return err
	}
	priv, err := os.ReadFile(*privF)
	if err != nil {
		return err
	}
	tpm, err := tpmdev.OpenAt(*dev)
	if err != nil {
		return err
	}
	defer tpm.Close()
	secret, err := attest.Unseal(tpm, pub, priv, *pcr, bl[0])
	if err != nil {
		return err
	}
	if *out == "-" {
		_, err = os.Stdout.Write(secret)
		return err
	}
	return os.WriteFile(*out, secret, 0o600)
}
