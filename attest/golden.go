package attest

import (
	"crypto"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

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
type UKIGolden struct {
	Version      int               `json:"version"`
	Name         string            `json:"name"`
	Authenticode map[string]string `json:"authenticode"`
	PCR11        map[string]string `json:"pcr11"`
	Sections     []string          `json:"sections"`
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
