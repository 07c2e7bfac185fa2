package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/mcinit/mcinit/attest"
	"github.com/mcinit/mcinit/policy"
)

func init() {
	register("verify", "on a server: check a device's quote and event log, print the verdict JSON", runVerify)
}

const verifyUsage = `usage: mcinit verify -quote-dir DIR -nonce HEX -ak AK.pem -policy P [-policy P2 ...]
                     [-keys DIR] [-require-profile production|development]

Prints the verdict JSON on stdout; exits 3 when the verdict is not ok.
With -keys, every -policy must carry valid signatures (P.sig) by that key set,
and the device must have measured that key set.`

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func runVerify(args []string) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), verifyUsage); fs.PrintDefaults() }
	dir := fs.String("quote-dir", "", "directory written by mcinit attest")
	nonceHex := fs.String("nonce", "", "the nonce this verifier issued, hex")
	akFile := fs.String("ak", "", "enrolled AK public key (PEM)")
	keysDir := fs.String("keys", "", "trusted key directory: verify each policy's signatures (P.sig)")
	require := fs.String("require-profile", "", "fail unless the device booted this profile")
	var pols multiFlag
	fs.Var(&pols, "policy", "a known signed policy file (repeatable)")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if *dir == "" || *nonceHex == "" || *akFile == "" || len(pols) == 0 || fs.NArg() != 0 {
		return usagef("verify: -quote-dir, -nonce, -ak and at least one -policy are required")
	}
	nonce, err := hex.DecodeString(*nonceHex)
	if err != nil || len(nonce) == 0 {
		return usagef("verify: -nonce is not hex")
	}
	akPEM, err := os.ReadFile(*akFile)
	if err != nil {
		return err
	}
	ak, err := attest.ParsePublicPEM(akPEM)
	if err != nil {
		return fmt.Errorf("%s: %w", *akFile, err)
	}
	var ks *policy.KeySet
	if *keysDir != "" {
		if ks, err = policy.LoadKeySetDir(*keysDir); err != nil {
			return err
		}
	}
	var known []attest.KnownPolicy
	for _, p := range pols {
		kp, err := knownPolicy(p, ks)
		if err != nil {
			return err
		}
		known = append(known, kp)
	}
	ev, err := attest.ReadDir(*dir)
	if err != nil {
		return err
	}
	v, verr := attest.Verify(ev, known, nonce, ak)
	if *require != "" {
		c := attest.Check{Name: "profile-required", OK: v.Profile == *require, Detail: "want " + *require + ", got " + v.Profile}
		v.Checks = append(v.Checks, c)
		if !c.OK {
			v.OK, v.Verdict = false, "fail"
			if verr == nil {
				verr = errors.New("attestation rejected: " + c.Name + ": " + c.Detail)
			}
		}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	if verr != nil {
		return rejected(verr)
	}
	return nil
}

func knownPolicy(path string, ks *policy.KeySet) (attest.KnownPolicy, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return attest.KnownPolicy{}, err
	}
	var pol *policy.Policy
	if ks != nil {
		sig, err := os.ReadFile(path + ".sig")
		if err != nil {
			return attest.KnownPolicy{}, err
		}
		vp, err := policy.VerifyPolicy(raw, sig, ks)
		if err != nil {
			return attest.KnownPolicy{}, fmt.Errorf("%s: %w", path, err)
		}
		pol = vp.Policy
	} else if pol, err = policy.Parse(raw); err != nil {
		return attest.KnownPolicy{}, fmt.Errorf("%s: %w", path, err)
	}
	kp := attest.KnownPolicy{Raw: raw, Version: pol.Version, PCR: pol.PCRIndex()}
	if ks != nil {
		kp.Threshold = ks.Threshold
		for _, k := range ks.Keys() {
			kp.KeyIDs = append(kp.KeyIDs, k.ID)
		}
	}
	for _, r := range pol.Production.Roots {
		kp.RootHashes = append(kp.RootHashes, strings.ToLower(r.RootHash))
	}
	return kp, nil
}
