package main

import (
	"crypto"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mcinit/mcinit/attest"
	"github.com/mcinit/mcinit/internal/boundedfile"
	"github.com/mcinit/mcinit/policy"
	"github.com/mcinit/mcinit/signing"
)

func init() {
	register("verify", "on a server: check a device's quote and event logs, print the verdict JSON", runVerify)
}

const verifyUsage = `usage: mcinit verify -quote-dir DIR -nonce HEX -ak AK.pem -policy P [-policy P2 ...]
                     -keys DIR | -insecure-no-keys
                     [-uki FLEET.efi ...] [-golden FLEET.json ...] [-allow-unanchored]
                     [-allow-sha1] [-require-profile production|development]

Prints the verdict JSON on stdout. Exit codes: 0 ok; 3 rejected (verdict
"fail"); 4 unanchored (no firmware chain: direct kernel boot or no firmware
log) unless -allow-unanchored; 5 evidence missing, oversized or unreadable;
2 usage; 1 other errors (unreadable policy, keys or AK).
Every -policy must carry valid signatures (P.sig) by the -keys key set, and
the device must have measured that key set. The booted image must be one of
the fleet's UKIs: -uki computes their values from the files, -golden reads
them from "mcinit predict -uki FILE -format json".`

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func runVerify(args []string) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), verifyUsage); fs.PrintDefaults() }
	dir := fs.String("quote-dir", "", "directory written by mcinit attest")
	nonceHex := fs.String("nonce", "", "the nonce this verifier issued, hex")
	akFile := fs.String("ak", "", "enrolled AK public key (PEM)")
	keysDir := fs.String("keys", "", "trusted key directory: verify each policy's signatures (P.sig) and the measured key set")
	noKeys := fs.Bool("insecure-no-keys", false, "experiments only: trust the policies without checking signatures or the key set")
	require := fs.String("require-profile", "", "fail unless the device booted this profile")
	allowUnanchored := fs.Bool("allow-unanchored", false, "accept evidence without a firmware chain (verdict unanchored: mcinit's PCR alone)")
	allowSHA1 := fs.Bool("allow-sha1", false, "accept a quote whose only PCR bank is SHA-1")
	var pols, ukis, goldens multiFlag
	fs.Var(&pols, "policy", "a known signed policy file (repeatable)")
	fs.Var(&ukis, "uki", "a fleet UKI (repeatable)")
	fs.Var(&goldens, "golden", "a fleet UKI's golden values, from mcinit predict -uki -format json (repeatable)")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if *dir == "" || *nonceHex == "" || *akFile == "" || len(pols) == 0 || fs.NArg() != 0 {
		return usagef("verify: -quote-dir, -nonce, -ak and at least one -policy are required")
	}
	if (*keysDir == "") == !*noKeys {
		return usagef("verify: give -keys DIR (or, for experiments, -insecure-no-keys), not both")
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
	var ks *signing.KeySet
	if *keysDir != "" {
		if ks, err = signing.LoadKeySetDir(*keysDir); err != nil {
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
	opt := attest.Options{AllowUnanchored: *allowUnanchored, AllowSHA1Only: *allowSHA1}
	for _, f := range ukis {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		g, err := attest.GoldenFromUKI(filepath.Base(f), b, []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512})
		if err != nil {
			return err
		}
		opt.UKIs = append(opt.UKIs, g)
	}
	for _, f := range goldens {
		b, err := boundedfile.ReadPath(f, maxSmallFile)
		if err != nil {
			return err
		}
		g, err := attest.ParseGolden(b)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		opt.UKIs = append(opt.UKIs, g)
	}
	ev, err := attest.ReadDir(*dir)
	if err != nil {
		return classError{err, exitEvidence}
	}
	v, verr := attest.Verify(ev, known, nonce, ak, opt)
	if *require != "" {
		c := attest.Check{Name: "profile-required", OK: v.Profile == *require, Detail: "want " + *require + ", got " + v.Profile}
		v.Checks = append(v.Checks, c)
		if !c.OK {
			v.OK, v.Verdict = false, attest.VerdictFail
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
	switch {
	case verr == nil:
		return nil
	case v.Verdict == attest.VerdictUnanchored:
		return classError{verr, exitUnanchored}
	}
	return rejected(verr)
}

func knownPolicy(path string, ks *signing.KeySet) (attest.KnownPolicy, error) {
	raw, err := polReadFile(path, policy.MaxPolicySize)
	if err != nil {
		return attest.KnownPolicy{}, err
	}
	var pol *policy.Policy
	if ks != nil {
		sig, err := polReadFile(path+".sig", signing.MaxSignatureFile)
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
	kp := attest.KnownPolicy{Raw: raw, Version: pol.Version, PCR: pol.PCRIndex(), TPMRequired: pol.Production.RequiresTPM()}
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
