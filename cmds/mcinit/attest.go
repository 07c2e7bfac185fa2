package main

import (
	"encoding/hex"
	"flag"
	"fmt"
	"os"

	"github.com/mcinit/mcinit/attest"
	"github.com/mcinit/mcinit/measure"
)

func init() {
	register("attest", "on the device: quote mcinit's PCR with a verifier's nonce", runAttest)
}

const attestUsage = `usage: mcinit attest -nonce HEX -out DIR [-log FILE] [-tpm DEV|tcp:HOST:PORT]
       mcinit attest -ak-pub-out FILE [-tpm ...]

Writes quote.bin (TPMS_ATTEST), quote.sig (TPMT_SIGNATURE), ak.pub (PEM),
eventlog.bin, pcrs.txt and pcrs.bin into DIR. The PCR and banks quoted are
those of the event log. -ak-pub-out writes the AK's public key for
enrollment (with -nonce too, or alone).`

func runAttest(args []string) error {
	fs := flag.NewFlagSet("attest", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), attestUsage); fs.PrintDefaults() }
	nonceHex := fs.String("nonce", "", "verifier's nonce, hex (1-64 bytes)")
	out := fs.String("out", "", "output directory")
	logFile := fs.String("log", measure.LogPath, "mcinit event log")
	dev := fs.String("tpm", "", "TPM device or tcp:HOST:PORT (default /dev/tpmrm0, /dev/tpm0)")
	akOut := fs.String("ak-pub-out", "", "write the AK public key (PEM) here, for enrollment")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() != 0 || (*nonceHex == "") != (*out == "") || (*nonceHex == "" && *akOut == "") {
		return usagef("attest: give -nonce with -out, and/or -ak-pub-out")
	}
	tpm, err := measure.OpenTPMAt(*dev)
	if err != nil {
		return err
	}
	defer tpm.Close()
	dt := measure.WithDeadline(tpm, measure.DefaultTimeout)

	if *akOut != "" {
		ak, err := attest.LoadAK(dt)
		if err != nil {
			return err
		}
		pemb, err := attest.MarshalPublicPEM(ak.Public)
		ak.Close()
		if err != nil {
			return err
		}
		if err := os.WriteFile(*akOut, pemb, 0o644); err != nil {
			return err
		}
	}
	if *nonceHex == "" {
		return nil
	}
	nonce, err := hex.DecodeString(*nonceHex)
	if err != nil || len(nonce) == 0 || len(nonce) > attest.MaxNonceSize {
		return usagef("attest: -nonce: want 1-%d bytes of hex", attest.MaxNonceSize)
	}
	logb, err := os.ReadFile(*logFile)
	if err != nil {
		return err
	}
	lg, err := measure.ParseLog(logb)
	if err != nil {
		return fmt.Errorf("%s: %w", *logFile, err)
	}
	if len(lg.Records) == 0 {
		return fmt.Errorf("%s: no events", *logFile)
	}
	ev, err := attest.Quote(dt, int(lg.Records[0].PCR), lg.Banks, nonce)
	if err != nil {
		return err
	}
	ev.EventLog = logb
	return ev.WriteDir(*out)
}
