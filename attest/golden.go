package attest

import (
	"crypto"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/mcinit/mcinit/fwlog"
	"github.com/mcinit/mcinit/measure"
	"github.com/mcinit/mcinit/uki"
)

// GoldenVersion is the format version of a UKIGolden file.
const GoldenVersion = 1

// UKIGolden is what firmware and the systemd stub measure for one of the
// fleet's UKIs, per bank (tpm2-tools bank names, lowercase hex):
// Authenticode is the image's Authenticode digest, which the firmware
// extends into PCR 4 as EV_EFI_BOOT_SERVICES_APPLICATION; PCR11 is the
// value the stub leaves in PCR 11 after measuring the sections.
//
// Platform, when given, holds the firmware's own PCRs (PlatformPCRs:
// code, configuration, option ROMs, boot disk GPT, manufacturer) as a
// known-good boot of the fleet's hardware and firmware left them: PCR
// index → bank → value. The verifier then compares them too.
type UKIGolden struct {
	Version      int                          `json:"version"`
	Name         string                       `json:"name"`
	Authenticode map[string]string            `json:"authenticode"`
	PCR11        map[string]string            `json:"pcr11"`
	Sections     []string                     `json:"sections"`
	Platform     map[string]map[string]string `json:"platform_pcrs,omitempty"`
}

// PlatformPCRs are the firmware PCRs a golden file may fix: 0-3, 5 and 6.
// PCR 4 and 7 are checked by their events (the UKI, Secure Boot); their
// values also depend on the keys and images, not just the platform.
var PlatformPCRs = []int{0, 1, 2, 3, 5, 6}

// SetPlatform fills g.Platform from a known-good boot's firmware log,
// replayed, in the banks of g.
func (g *UKIGolden) SetPlatform(fw *fwlog.Log) error {
	vals := fw.ReplayPCRs(PlatformPCRs)
	g.Platform = map[string]map[string]string{}
	for _, p := range PlatformPCRs {
		m := map[string]string{}
		for bank := range g.Authenticode {
			h := bankByName(bank)
			v := vals[p][h]
			if v == nil {
				return fmt.Errorf("golden values: the firmware log has no %s bank", bank)
			}
			m[bank] = hex.EncodeToString(v)
		}
		g.Platform[strconv.Itoa(p)] = m
	}
	return nil
}

// GoldenFromUKI computes a UKI's golden values in the given banks.
func GoldenFromUKI(name string, pe []byte, banks []crypto.Hash) (*UKIGolden, error) {
	f, err := uki.Parse(pe)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	secs, err := f.MeasuredSections()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	g := &UKIGolden{Version: GoldenVersion, Name: name, Authenticode: map[string]string{}, PCR11: map[string]string{}}
	for _, s := range secs {
		g.Sections = append(g.Sections, s.Name)
	}
	for _, h := range banks {
		d, err := f.AuthenticodeDigest(h)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		g.Authenticode[measure.BankName(h)] = hex.EncodeToString(d)
		g.PCR11[measure.BankName(h)] = hex.EncodeToString(uki.PCR11(secs, h))
	}
	return g, nil
}

// ParseGolden reads a UKIGolden as `mcinit predict -uki -format json`
// writes it, checking every value's length for its bank.
func ParseGolden(b []byte) (*UKIGolden, error) {
	if len(b) > 64<<10 {
		return nil, errors.New("golden values: more than 64 KiB")
	}
	var g UKIGolden
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, fmt.Errorf("golden values: %w", err)
	}
	if g.Version != GoldenVersion {
		return nil, fmt.Errorf("golden values: version %d, want %d", g.Version, GoldenVersion)
	}
	if len(g.Authenticode) == 0 {
		return nil, errors.New("golden values: no authenticode digest")
	}
	for _, m := range []map[string]string{g.Authenticode, g.PCR11} {
		for bank, v := range m {
			h := bankByName(bank)
			d, err := hex.DecodeString(v)
			if h == 0 || err != nil || len(d) != h.Size() {
				return nil, fmt.Errorf("golden values: %s value %q", bank, v)
			}
		}
	}
	for p, m := range g.Platform {
		if i, err := strconv.Atoi(p); err != nil || !slices.Contains(PlatformPCRs, i) || strconv.Itoa(i) != p {
			return nil, fmt.Errorf("golden values: platform PCR %q is not one of %v", p, PlatformPCRs)
		}
		for bank, v := range m {
			h := bankByName(bank)
			d, err := hex.DecodeString(v)
			if h == 0 || err != nil || len(d) != h.Size() {
				return nil, fmt.Errorf("golden values: PCR %s %s value %q", p, bank, v)
			}
		}
	}
	for bank := range g.Authenticode {
		if _, ok := g.PCR11[bank]; !ok {
			return nil, fmt.Errorf("golden values: %s has an authenticode digest but no PCR 11", bank)
		}
	}
	return &g, nil
}

// value returns m's value for bank h, decoded, or nil.
func goldenValue(m map[string]string, h crypto.Hash) []byte {
	v, ok := m[measure.BankName(h)]
	if !ok {
		return nil
	}
	d, err := hex.DecodeString(v)
	if err != nil {
		return nil
	}
	return d
}
