package main

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mcinit/mcinit/attest"
	"github.com/mcinit/mcinit/handoff"
	"github.com/mcinit/mcinit/internal/boundedfile"
	"github.com/mcinit/mcinit/measure"
	"github.com/mcinit/mcinit/tpmdev"
)

func init() {
	register("attest", "on the device: quote mcinit's PCR with a verifier's nonce", runAttest)
}

const attestUsage = `usage: mcinit attest -nonce HEX -out DIR [-log FILE] [-fw-log FILE] [-tpm DEV|tcp:HOST:PORT]
       mcinit attest [-ak-pub-out FILE] [-ek-pub-out FILE] [-activate DIR] [-tpm ...]

Writes quote.bin (TPMS_ATTEST), quote.sig (TPMT_SIGNATURE), ak.pub (PEM),
eventlog.bin, fwlog.bin (the firmware's log, when the kernel has one),
pcrs.txt, pcrs.bin and version ("mcinit-evidence 2") into DIR. The quote
covers PCRs 0-7, 11, 12 and the event log's PCR, in every bank of the
event log. -ak-pub-out writes the AK's public key for
enrollment, -ek-pub-out the endorsement key's; -activate answers an
enrollment challenge (mcinit enroll challenge) by printing its secret in hex.`

func runAttest(args []string) error {
	fs := flag.NewFlagSet("attest", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), attestUsage); fs.PrintDefaults() }
	nonceHex := fs.String("nonce", "", "verifier's nonce, hex (1-64 bytes)")
	out := fs.String("out", "", "output directory")
	logFile := fs.String("log", handoff.EventLog, "mcinit event log")
	fwFile := fs.String("fw-log", attest.FirmwareLogPath, "the firmware's event log; a missing file means none")
	dev := fs.String("tpm", "", "TPM device or tcp:HOST:PORT (default /dev/tpmrm0, /dev/tpm0)")
	akOut := fs.String("ak-pub-out", "", "write the AK public key (PEM) here, for enrollment")
	ekOut := fs.String("ek-pub-out", "", "write the EK public key (PEM) here, for enrollment")
	activate := fs.String("activate", "", "answer the enrollment challenge in this directory")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() != 0 || (*nonceHex == "") != (*out == "") || (*nonceHex == "" && *akOut == "" && *ekOut == "" && *activate == "") {
		return usagef("attest: give -nonce with -out, and/or -ak-pub-out, -ek-pub-out, -activate")
	}
	tpm, err := tpmdev.OpenAt(*dev)
	if err != nil {
		return err
	}
	defer tpm.Close()
	dt := tpm
	// -ak-pub-out may name a file inside -out.
	if *out != "" {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
	}

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
	if *ekOut != "" {
		pemb, err := attest.EKPublicPEM(dt)
		if err != nil {
			return err
		}
		if err := os.WriteFile(*ekOut, pemb, 0o644); err != nil {
			return err
		}
	}
	if *activate != "" {
		var ch attest.Challenge
		if ch.CredBlob, err = boundedfile.ReadPath(filepath.Join(*activate, attest.FileCredBlob), maxSmallFile); err != nil {
			return err
		}
		if ch.EncSecret, err = boundedfile.ReadPath(filepath.Join(*activate, attest.FileEncSecret), maxSmallFile); err != nil {
			return err
		}
		secret, err := attest.Activate(dt, &ch)
		if err != nil {
			return err
		}
		fmt.Println(hex.EncodeToString(secret))
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
	pcr := int(lg.Records[0].PCR)
	pcrs := []int{}
	for _, p := range attest.FirmwarePCRs {
		if p < pcr {
			pcrs = append(pcrs, p)
		}
	}
	pcrs = append(pcrs, pcr)
	for _, p := range attest.FirmwarePCRs {
		if p > pcr {
			pcrs = append(pcrs, p)
		}
	}
	// Read the firmware log before quoting: nothing extends PCRs 0-7, 11
	// and 12 after ExitBootServices, so it cannot be stale.
	fwb, err := readFirmwareLog(*fwFile)
	if err != nil {
		return err
	}
	ev, err := attest.QuotePCRs(dt, pcrs, lg.Banks, nonce)
	if err != nil {
		return err
	}
	ev.EventLog, ev.FirmwareLog = logb, fwb
	return ev.WriteDir(*out)
}

// maxSmallFile bounds the challenge and golden files the CLI reads.
const maxSmallFile = 64 << 10

// readFirmwareLog reads the firmware's log, mounting securityfs first when
// the booted system has not (best effort); a missing log is nil.
func readFirmwareLog(path string) ([]byte, error) {
	if path == attest.FirmwareLogPath {
		mountSecurityFS()
	}
	b, err := boundedfile.ReadPath(path, measure.MaxLogSize)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}
