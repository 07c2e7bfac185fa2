package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mcinit/mcinit/attest"
	"github.com/mcinit/mcinit/fwlog"
	"github.com/mcinit/mcinit/measure"
)

// predictUKI renders what firmware and stub measure for a UKI: per bank
// its Authenticode digest (the PCR 4 EV_EFI_BOOT_SERVICES_APPLICATION
// event) and PCR 11 as the stub leaves it. Formats: text, json (the
// golden values `mcinit verify -golden` reads) and tpm2 (raw PCR 11
// values, bank order). withPolicy: the policy's prediction follows, which
// only text can carry in the same output.
//
// platformLog, when set, is a known-good boot's firmware log: PCRs 0-3, 5
// and 6 as it replays become golden values too (verify then compares them).
func predictUKI(path, platformLog, banks, format string, withPolicy bool) ([]byte, error) {
	bl, err := bankList(banks)
	if err != nil {
		return nil, usagef("predict: -banks: %v", err)
	}
	if withPolicy && format != "text" {
		return nil, usagef("predict: -uki with a policy needs -format text (or two runs)")
	}
	pe, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	g, err := attest.GoldenFromUKI(filepath.Base(path), pe, bl)
	if err != nil {
		return nil, err
	}
	if platformLog != "" {
		lb, err := os.ReadFile(platformLog)
		if err != nil {
			return nil, err
		}
		fw, err := fwlog.Parse(lb)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", platformLog, err)
		}
		if err := g.SetPlatform(fw); err != nil {
			return nil, fmt.Errorf("%s: %w", platformLog, err)
		}
	}
	var b bytes.Buffer
	switch format {
	case "json":
		enc := json.NewEncoder(&b)
		enc.SetIndent("", "  ")
		if err := enc.Encode(g); err != nil {
			return nil, err
		}
	case "tpm2":
		for _, h := range bl {
			v, _ := hex.DecodeString(g.PCR11[measure.BankName(h)])
			b.Write(v)
		}
	case "text":
		fmt.Fprintf(&b, "# UKI %s: stub-measured sections %s\n", g.Name, strings.Join(g.Sections, " "))
		for _, h := range bl {
			n := measure.BankName(h)
			fmt.Fprintf(&b, "# %s:%d EV_EFI_BOOT_SERVICES_APPLICATION authenticode=%s\n", n, fwlog.PCRBootApps, g.Authenticode[n])
		}
		for _, h := range bl {
			n := measure.BankName(h)
			for _, p := range attest.PlatformPCRs {
				if v, ok := g.Platform[strconv.Itoa(p)][n]; ok {
					fmt.Fprintf(&b, "%s:%d=%s\n", n, p, v)
				}
			}
			fmt.Fprintf(&b, "%s:%d=%s\n", n, fwlog.PCRStub, g.PCR11[n])
		}
	default:
		return nil, usagef("predict: -format %q: want text, json or tpm2", format)
	}
	return b.Bytes(), nil
}

// writeOut writes b to path, "-" meaning stdout.
func writeOut(path string, b []byte) error {
	if path == "-" {
		_, err := os.Stdout.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
