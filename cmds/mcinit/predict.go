package main

import (
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mcinit/mcinit/attest"
	"github.com/mcinit/mcinit/boot"
	"github.com/mcinit/mcinit/cmdline"
	"github.com/mcinit/mcinit/decide"
	"github.com/mcinit/mcinit/identity"
	"github.com/mcinit/mcinit/measure"
	"github.com/mcinit/mcinit/policy"
	"github.com/mcinit/mcinit/signing"
)

func init() {
	register("predict", "expected PCR values and event list for a policy, board and profile", runPredict)
}

const predictUsage = `usage: mcinit predict -policy P [-sig S] -keys DIR -board B -identity ID [-profile production|development]
                      [-request R | -cmdline LINE] [-grant G.toml ... [-grant-source partition|initramfs] [-now TIME]] [-reason R] [-root-hash H]
                      [-banks sha256,...] [-format text|json|tpm2] [-o FILE] [-boards DIR] [-uki UKI.efi]
       mcinit predict -uki UKI.efi [-platform-log FWLOG] [-banks sha256,...] [-format text|json|tpm2] [-o FILE]

Replays /init's measurements offline: the same decision (package decide,
through package boot) and the same event builder, with the facts given
instead of read. -identity is the identity's canonical string
(/run/mcinit/identity, or mcinit identify); it is checked. -profile and
-reason are what you expect: predict fails (exit 3) when /init would
decide otherwise or refuse. -format tpm2 writes the raw PCR value(s), in
bank order, for tpm2_createpolicy --policy-pcr -l sha256:PCR -f FILE.
-uki adds what firmware and the systemd stub measure for that UKI: its
Authenticode digest (PCR 4) and PCR 11 (see predict_uki.go); -platform-log
adds PCRs 0-3, 5 and 6 as a known-good boot's firmware log replays them.`

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
	sigFile := fs.String("sig", "", "policy signature file (default POLICY.sig)")
	keysDir := fs.String("keys", "", "trusted key directory (*.pem + keyset.toml)")
	board := fs.String("board", "", "matched board name")
	boardDir := fs.String("boards", "", "board files `DIR` the image carries (default: the built-in boards); the board's provenance is measured")
	ident := fs.String("identity", "", "identity canonical string")
	profile := fs.String("profile", "production", "expected profile: production or development")
	request := fs.String("request", "", "requested profile: none, production, development, malformed (default: from -profile)")
	line := fs.String("cmdline", "", "kernel command line (instead of -request)")
	reason := fs.String("reason", "", "expected decision reason (default: whatever /init decides)")
	rootHash := fs.String("root-hash", "", "root hash of the accepted root found on the disk (default: the policy's first root)")
	banks := fs.String("banks", "sha256", "PCR banks the TPM has active, comma-separated")
	format := fs.String("format", "text", "output: text, json, or tpm2 (raw PCR values)")
	out := fs.String("o", "-", "output file")
	ukiFile := fs.String("uki", "", "a UKI: also predict its PCR 4 event and PCR 11")
	platformLog := fs.String("platform-log", "", "with -uki: a known-good boot's firmware log (fwlog.bin); its PCRs 0-3, 5, 6 become golden values")
	var grants polStringList
	fs.Var(&grants, "grant", "development grant G.toml (signature in G.toml.sig); repeatable")
	now := fs.String("now", "", nowUsage)
	grantSource := fs.String("grant-source", measure.GrantInPartition, "where /init reads the -grant files: partition (the disk's mcinit-grants) or initramfs; the grant event measures it")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	var ukiOut []byte
	if *platformLog != "" && *ukiFile == "" {
		return usagef("predict: -platform-log needs -uki")
	}
	if *ukiFile != "" {
		b, err := predictUKI(*ukiFile, *platformLog, *banks, *format, *polFile != "")
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
	if *request != "" && *line != "" {
		return usagef("predict: give -request or -cmdline, not both")
	}
	want := decide.Profile(*profile)
	if want != decide.Production && want != decide.Development {
		return usagef("predict: -profile %q: want production or development", *profile)
	}
	id, err := identity.Parse(*ident)
	if err != nil {
		return usagef("predict: -identity: %v", err)
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
	if *line == "" {
		if *request == "" {
			*request = map[decide.Profile]string{decide.Production: "none", decide.Development: "development"}[want]
		}
		var ok bool
		// The command line that makes /init see this request.
		if *line, ok = map[string]string{"none": "", "production": "mcinit.profile=production",
			"development": "mcinit.profile=development", "malformed": "mcinit.profile=malformed"}[*request]; !ok {
			return usagef("predict: -request %q: want none, production, development or malformed", *request)
		}
	}
	cl, err := cmdline.Parse(*line)
	if err != nil {
		return usagef("predict: -cmdline: %v", err)
	}
	raw, err := polReadFile(*polFile, policy.MaxPolicySize)
	if err != nil {
		return err
	}
	v, err := polVerify(*polFile, *sigFile, *keysDir)
	if err != nil {
		return err
	}
	ks, err := signing.LoadKeySetDir(*keysDir)
	if err != nil {
		return err
	}
	if *grantSource != measure.GrantInPartition && *grantSource != measure.GrantInInitramfs {
		return usagef("predict: -grant-source %q: want partition or initramfs", *grantSource)
	}
	var gs []*policy.Grant
	refs := map[*policy.Grant]boot.GrantRef{}
	for _, g := range grants {
		gv, err := polVerifyGrant(g, "", ks)
		if err != nil {
			return rejected(fmt.Errorf("predict: grant %s: %w", g, err))
		}
		doc, err := polReadFile(g, policy.MaxGrantSize)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(doc)
		refs[gv] = boot.GrantRef{SHA256: hex.EncodeToString(sum[:]), Source: *grantSource}
		gs = append(gs, gv)
	}
	// The rollback floor is not measured; a refusal for it measures no
	// successful boot, so it plays no part here.
	clock, err := deviceClock(*now)
	if err != nil {
		return err
	}
	d, err := boot.Decide(v, *board, id, cl, boot.Floor{}, gs, clock)
	if err != nil {
		return rejected(fmt.Errorf("predict: /init would refuse to boot: %w", err))
	}
	if d.Profile != want || (*reason != "" && string(d.Reason) != *reason) {
		return rejected(fmt.Errorf("predict: /init decides %s (request %s, reason %s) for board %s device %q, not %s%s",
			d.Profile, d.Request, d.Reason, *board, id.DeviceID(), want, prefixed(" reason ", *reason)))
	}
	pol := v.Policy
	var root policy.Root
	for _, r := range pol.Production.Roots {
		if *rootHash == "" || strings.EqualFold(r.RootHash, *rootHash) {
			root = r
			break
		}
	}
	if root.RootHash == "" {
		return rejected(fmt.Errorf("predict: root hash %q is not one of the policy's roots", *rootHash))
	}
	ids, threshold := boot.KeyIDs(ks)
	facts := boot.Facts{PolicyRaw: raw, KeyIDs: ids, Threshold: threshold, Board: *board, BoardSource: boot.BoardSource(bd),
		Identity: id, Decision: d.Facts, Grant: refs[d.Grant],
		Root: boot.RootFor(d.Facts, pol.Development, root)}
	pr, err := attest.Predict(facts.Events(), pol.PCRIndex(), bl)
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

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}
