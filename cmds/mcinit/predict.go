package main

import (
	"crypto"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/mcinit/mcinit/attest"
	"github.com/mcinit/mcinit/decide"
	"github.com/mcinit/mcinit/measure"
	"github.com/mcinit/mcinit/policy"
)

func init() {
	register("predict", "expected PCR values and event list for a policy, board and profile", runPredict)
}

const predictUsage = `usage: mcinit predict -policy P -keys DIR -board B -identity ID -profile production|development
                      [-request R] [-reason R] [-root-hash H] [-banks sha256,...] [-format text|json|tpm2] [-o FILE]
                      [-uki UKI.efi]
       mcinit predict -uki UKI.efi [-banks sha256,...] [-format text|json|tpm2] [-o FILE]

Replays /init's measurements offline. -identity is the identity's canonical
string (mcinit identify). -format tpm2 writes the raw PCR value(s), in bank
order, for tpm2_createpolicy --policy-pcr -l sha256:PCR -f FILE.
-uki adds what firmware and the systemd stub measure for that UKI: its
Authenticode digest (PCR 4) and PCR 11 (see predict_uki.go).`

// bankList parses "sha1,sha256".
func bankList(s string) ([]crypto.Hash, error) {
	var out []crypto.Hash
	for _, n := range strings.Split(s, ",") {
		h := map[string]crypto.Hash{"sha1": crypto.SHA1, "sha256": crypto.SHA256, "sha384": crypto.SHA384, "sha512": crypto.SHA512}[strings.TrimSpace(n)]
		if h == 0 {
			return nil, fmt.Errorf("unknown bank %q (sha1, sha256, sha384, sha512)", n)
		}
		out = append(out, h)
	}
	return out, nil
}

func runPredict(args []string) error {
	fs := flag.NewFlagSet("predict", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), predictUsage); fs.PrintDefaults() }
	polFile := fs.String("policy", "", "signed policy file, exactly as shipped")
	keysDir := fs.String("keys", "", "trusted key directory (*.pem + keyset.toml)")
	board := fs.String("board", "", "matched board name")
	boardDir := fs.String("boards", "", "board files `DIR` the image carries (default: the built-in boards); the board's provenance is measured")
	ident := fs.String("identity", "", "identity canonical string")
	profile := fs.String("profile", "production", "granted profile: production or development")
	request := fs.String("request", "", "requested profile: none, production, development, malformed (default: from -profile)")
	reason := fs.String("reason", "", "decision reason (default: from the request, and for development from the policy: board, device or grant)")
	device := fs.String("device", "", "device ID for the development reason (default: the identity's serial, else its uuid)")
	rootHash := fs.String("root-hash", "", "root hash (default: the policy's first root)")
	banks := fs.String("banks", "sha256", "PCR banks the TPM has active, comma-separated")
	format := fs.String("format", "text", "output: text, json, or tpm2 (raw PCR values)")
	out := fs.String("o", "-", "output file")
	ukiFile := fs.String("uki", "", "a UKI: also predict its PCR 4 event and PCR 11")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	var ukiOut []byte
	if *ukiFile != "" {
		b, err := predictUKI(*ukiFile, *banks, *format, *polFile != "")
		if err != nil || *polFile == "" {
			if err == nil && fs.NArg() != 0 {
				return usagef("predict: unexpected arguments %v", fs.Args())
			}
			if err != nil {
				return err
			}
			return writeOut(*out, b)
		}
		ukiOut = b
	}
	if *polFile == "" || *keysDir == "" || *board == "" || *ident == "" || fs.NArg() != 0 {
		return usagef("predict: -policy, -keys, -board and -identity are required")
	}
	raw, err := os.ReadFile(*polFile)
	if err != nil {
		return err
	}
	pol, err := policy.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", *polFile, err)
	}
	ks, err := policy.LoadKeySetDir(*keysDir)
	if err != nil {
		return err
	}
	var ids []string
	for _, k := range ks.Keys() {
		ids = append(ids, k.ID)
	}
	bl, err := bankList(*banks)
	if err != nil {
		return usagef("predict: -banks: %v", err)
	}
	set, err := loadBoards(*boardDir)
	if err != nil {
		return err
	}
	bd, ok := set.Get(*board)
	if !ok {
		return fmt.Errorf("board %q is not among the board files (give -boards DIR)", *board)
	}
	b := measure.Boot{PolicyRaw: raw, KeyIDs: ids, Threshold: ks.Threshold, Board: *board, Identity: *ident,
		Profile: decide.Profile(*profile), Request: decide.Request(*request), Reason: decide.Reason(*reason)}
	if bd.Provenance.Imported() {
		b.BoardSource = measure.BoardSource{Commit: bd.Provenance.Commit, Profile: bd.Provenance.Profile}
	}
	if *rootHash == "" && len(pol.Production.Roots) > 0 {
		*rootHash = pol.Production.Roots[0].RootHash
	}
	switch b.Profile {
	case decide.Production:
		b.Root = measure.Root{Kind: measure.RootVerity, RootHash: *rootHash}
		if b.Request == "" {
			b.Request = decide.RequestNone
		}
		if b.Reason == "" {
			b.Reason = map[decide.Request]decide.Reason{decide.RequestNone: decide.ReasonDefault, decide.RequestProduction: decide.ReasonRequested,
				decide.RequestMalformed: decide.ReasonMalformedRequest, decide.RequestDevelopment: decide.ReasonDevDenied}[b.Request]
		}
	case decide.Development:
		d := pol.Development
		b.Root = measure.Root{Kind: measure.RootOverlay, Upper: d.Upper, UpperLabel: d.UpperPartLabel}
		if b.Root.Upper == "" {
			b.Root.Upper = "tmpfs"
		}
		if d.VerifiesLower() {
			b.Root.RootHash = *rootHash
		}
		if b.Request == "" {
			b.Request = decide.RequestDevelopment
		}
		if b.Reason == "" {
			id := *device
			if id == "" {
				id = identityField(*ident, "serial")
			}
			if id == "" {
				id = identityField(*ident, "uuid")
			}
			// The same precedence as decide: board, then device, then grant.
			switch {
			case slices.Contains(d.AllowBoards, *board):
				b.Reason = decide.ReasonDevBoard
			case id != "" && slices.Contains(d.AllowDevices, policy.Device{Board: *board, DeviceID: id}):
				b.Reason = decide.ReasonDevDevice
			case d.AllowGrants:
				b.Reason = decide.ReasonDevGrant
			default:
				return rejected(fmt.Errorf("predict: the policy does not allow development for board %s device %q", *board, id))
			}
		}
	default:
		return usagef("predict: -profile %q: want production or development", *profile)
	}
	if _, ok := measure.AllDecisionEvents()[string(measure.DecisionEvent(b.Request, b.Profile, b.Reason).Data)]; !ok {
		return usagef("predict: request %s, profile %s, reason %s is not a decision /init can make", b.Request, b.Profile, b.Reason)
	}
	pr, err := attest.Predict(b, pol.PCRIndex(), bl)
	if err != nil {
		return err
	}

	w := io.Writer(os.Stdout)
	if *out != "-" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	if _, err := w.Write(ukiOut); err != nil {
		return err
	}
	switch *format {
	case "tpm2":
		for _, h := range pr.Banks {
			if _, err := w.Write(pr.Values[h]); err != nil {
				return err
			}
		}
	case "json":
		type jsEvent struct {
			Tag  string `json:"tag"`
			ID   string `json:"id"`
			Data string `json:"data"`
		}
		j := struct {
			PCR    int               `json:"pcr"`
			Values map[string]string `json:"values"`
			Events []jsEvent         `json:"events"`
		}{PCR: pr.PCR, Values: map[string]string{}}
		for _, h := range pr.Banks {
			j.Values[measure.BankName(h)] = hex.EncodeToString(pr.Values[h])
		}
		for _, ev := range pr.Events {
			j.Events = append(j.Events, jsEvent{ev.Tag.String(), fmt.Sprintf("%#08x", uint32(ev.Tag)), string(ev.Data)})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(j)
	case "text":
		for _, h := range pr.Banks {
			fmt.Fprintf(w, "%s:%d=%x\n", measure.BankName(h), pr.PCR, pr.Values[h])
		}
		for i, ev := range pr.Events {
			fmt.Fprintf(w, "# %d %#08x %s\n", i+1, uint32(ev.Tag), ev)
		}
	default:
		return usagef("predict: -format %q: want text, json or tpm2", *format)
	}
	return nil
}

// identityField reads key="value" from an identity's canonical string
// (values are quoted with \ and " escaped).
func identityField(ident, key string) string {
	i := strings.Index(ident, " "+key+"=\"")
	if i < 0 {
		return ""
	}
	rest := ident[i+len(key)+3:]
	var b strings.Builder
	for j := 0; j < len(rest); j++ {
		switch c := rest[j]; c {
		case '\\':
			if j+1 < len(rest) {
				j++
				b.WriteByte(rest[j])
			}
		case '"':
			return b.String()
		default:
			b.WriteByte(c)
		}
	}
	return ""
}
