package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/mcinit/mcinit/boards"
	"github.com/mcinit/mcinit/identity"
	"github.com/mcinit/mcinit/internal/boundedfile"
	"github.com/mcinit/mcinit/kmodules"
	"github.com/mcinit/mcinit/kmodules/modinfo"
	"github.com/mcinit/mcinit/nixhw"
)

func init() {
	register("boards", "board files from nixos-hardware: import PROFILE, diff FILE against it", runBoards)
}

func runBoards(args []string) error {
	if len(args) == 0 {
		return usagef("usage: mcinit boards import|diff [flags] ...")
	}
	switch args[0] {
	case "import":
		return boardsImport(args[1:], os.Stdout, os.Stderr)
	case "diff":
		return boardsDiff(args[1:], os.Stdout, os.Stderr)
	}
	return usagef("unknown boards verb %q (import, diff)", args[0])
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// sourceFlags are the flags import and diff share: where the profile is
// evaluated and what its provenance says.
type sourceFlags struct {
	nixpkgs, commit, repository string
}

func (s *sourceFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.nixpkgs, "nixpkgs", "", "use the lib (module system) of the nixpkgs checkout `DIR` instead of mcinit's harness lib")
	fs.StringVar(&s.commit, "commit", "", "the checkout's commit `ID` (default: git rev-parse HEAD in the checkout)")
	fs.StringVar(&s.repository, "repository", "", "where the checkout came from, `URL` (default: its git remote origin)")
}

// evaluate runs the profile and prints what could not be resolved, one
// line per option, on stderr.
func (s *sourceFlags) evaluate(dir, profile string, stderr io.Writer) (*nixhw.Facts, boards.Provenance, error) {
	prov, err := s.provenance(dir, profile)
	if err != nil {
		return nil, prov, err
	}
	f, err := nixhw.Evaluate(context.Background(), nixhw.Config{Nixpkgs: s.nixpkgs}, dir, profile)
	if err != nil {
		return nil, prov, err
	}
	for _, u := range f.Unresolved {
		fmt.Fprintln(stderr, u)
	}
	return f, prov, nil
}

var commitRE = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)

func (s *sourceFlags) provenance(dir, profile string) (boards.Provenance, error) {
	p := boards.Provenance{Source: "nixos-hardware", Commit: s.commit, Repository: s.repository,
		Profile: strings.Trim(filepath.ToSlash(filepath.Clean(profile)), "/")}
	if p.Commit == "" {
		// Debian's architecture names equal GOARCH for amd64 and arm64.
		out, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
		if err != nil {
			return p, fmt.Errorf("cannot tell the commit of %s (not a git checkout?): give -commit", dir)
		}
		p.Commit = strings.TrimSpace(string(out))
	}
	if !commitRE.MatchString(p.Commit) {
		return p, fmt.Errorf("commit %q is not a lower-case hex commit id", p.Commit)
	}
	if p.Repository == "" {
		if out, err := exec.Command("git", "-C", dir, "remote", "get-url", "origin").Output(); err == nil {
			p.Repository = strings.TrimSpace(string(out))
		}
	}
	return p, nil
}

func boardsImport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("boards import", flag.ContinueOnError)
	var src sourceFlags
	src.register(fs)
	name := fs.String("name", "", "board `NAME` (default: the profile path with '/' as '-')")
	out := fs.String("o", "", "write the board to `FILE` (default: stdout)")
	base := fs.String("base", "", "merge into the board `FILE`: keep its notes, match rules, quirks and hand-written modules")
	arch := fs.String("arch", "", "board architecture `ARCH`, amd64 or arm64 (default: from -base, -dtb/-compatible (arm64) or -smbios/-dmi (amd64))")
	var compat, dmi listFlag
	fs.Var(&compat, "compatible", "a device-tree compatible `STRING` the board matches (repeatable; together one rule)")
	fs.Var(&dmi, "dmi", "a DMI `FIELD=GLOB` the board matches, e.g. sys_vendor=LENOVO (repeatable; together one rule)")
	dtb := fs.String("dtb", "", "propose a match rule from the device tree `FILE` (its first compatible)")
	smb := fs.String("smbios", "", "propose a match rule from SMBIOS `FILE|DIR` (as mcinit identify --smbios)")
	kmods := fs.String("kernel-modules", "", "the board kernel's module `DIR` (lib/modules/RELEASE); default: Debian's kernel for the architecture")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() != 2 {
		return usagef("usage: mcinit boards import [flags] NIXOS_HARDWARE_DIR PROFILE")
	}
	if *dtb != "" && *smb != "" {
		return usagef("give at most one of -dtb and -smbios")
	}
	dir, profile := fs.Arg(0), fs.Arg(1)

	b := &boards.Board{}
	if *base != "" {
		data, err := boundedfile.ReadPath(*base, boards.MaxFileSize)
		if err != nil {
			return err
		}
		if b, err = boards.Parse(filepath.Base(*base), data); err != nil {
			return err
		}
	}
	switch {
	case *name != "":
		b.Name = *name
	case b.Name == "":
		b.Name = strings.ToLower(strings.ReplaceAll(strings.TrimSuffix(strings.Trim(filepath.ToSlash(filepath.Clean(profile)), "/"), ".nix"), "/", "-"))
	}
	rules, guess, err := matchRules(compat, dmi, *dtb, *smb, stderr)
	if err != nil {
		return err
	}
	for _, r := range rules {
		if !hasRule(b.Match, r) {
			b.Match = append(b.Match, r)
		}
	}
	switch {
	case *arch != "":
		b.Arch = *arch
	case b.Arch == "":
		b.Arch = guess
	}
	if b.Arch == "" {
		return usagef("cannot tell the architecture: give -arch")
	}
	if len(b.Match) == 0 && !b.Generic {
		return usagef("nixos-hardware does not say how to recognise the board: give -compatible, -dmi, -dtb or -smbios")
	}

	facts, prov, err := src.evaluate(dir, profile, stderr)
	if err != nil {
		return err
	}
	if facts.Empty() {
		return rejected(fmt.Errorf("nixos-hardware profile %s gives nothing mcinit can use", prov.Profile))
	}
	nixhw.Apply(b, facts, prov)
	text := boards.Format(b)
	if _, err := boards.Parse(b.Name+".toml", text); err != nil {
		return fmt.Errorf("the imported board is not valid: %w", err)
	}
	tree, err := kernelModules(*kmods, b.Arch)
	if err != nil {
		return err
	}
	if err := nixhw.CheckModules(b, tree); err != nil {
		return err
	}
	if *out == "" {
		_, err := stdout.Write(text)
		return err
	}
	return writeFileAtomic(*out, text)
}

// matchRules builds the rules the flags give and the ones proposed from a
// dump, and the architecture they suggest.
func matchRules(compat, dmi []string, dtb, smb string, stderr io.Writer) ([]boards.Rule, string, error) {
	var rules []boards.Rule
	arch := ""
	if len(compat) > 0 {
		rules = append(rules, boards.Rule{Compatible: compat})
		arch = "arm64"
	}
	if len(dmi) > 0 {
		var r boards.Rule
		fields := map[string]*string{
			"sys_vendor": &r.SysVendor, "product_name": &r.ProductName, "product_version": &r.ProductVersion,
			"product_family": &r.ProductFamily, "product_sku": &r.ProductSKU, "board_vendor": &r.BoardVendor,
			"board_name": &r.BoardName, "board_version": &r.BoardVersion,
		}
		for _, kv := range dmi {
			k, v, ok := strings.Cut(kv, "=")
			p, known := fields[k]
			if !ok || !known || v == "" {
				return nil, "", usagef("-dmi %q: want FIELD=GLOB with FIELD one of sys_vendor, product_name, product_version, product_family, product_sku, board_vendor, board_name, board_version", kv)
			}
			*p = v
		}
		rules = append(rules, r)
		arch = "amd64"
	}
	switch {
	case dtb != "":
		data, err := boundedfile.ReadPath(dtb, identity.MaxDTBSize)
		if err != nil {
			return nil, "", err
		}
		id, err := identity.FromDTB(data)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", dtb, err)
		}
		if len(id.Compatible) == 0 {
			return nil, "", fmt.Errorf("%s: no root compatible to match on", dtb)
		}
		// The first entry names the board; the rest are its SoC family.
		r := boards.Rule{Compatible: id.Compatible[:1]}
		fmt.Fprintf(stderr, "proposed match rule (from %s): compatible = [%q]\n", dtb, r.Compatible[0])
		rules = append(rules, r)
		arch = "arm64"
	case smb != "":
		id, err := readSMBIOSPath(smb)
		if err != nil {
			return nil, "", err
		}
		if id.SysVendor == "" {
			return nil, "", fmt.Errorf("%s: no system vendor to match on", smb)
		}
		// The family names a model line across machine-type codes
		// (Lenovo); without one, the product name.
		r := boards.Rule{SysVendor: id.SysVendor, ProductFamily: id.ProductFamily}
		if r.ProductFamily == "" {
			r.ProductName = id.ProductName
		}
		fmt.Fprintf(stderr, "proposed match rule (from %s): sys_vendor = %q, product_family = %q, product_name = %q\n", smb, r.SysVendor, r.ProductFamily, r.ProductName)
		rules = append(rules, r)
		arch = "amd64"
	}
	return rules, arch, nil
}

func hasRule(rs []boards.Rule, r boards.Rule) bool {
	for _, x := range rs {
		if fmt.Sprint(x) == fmt.Sprint(r) {
			return true
		}
	}
	return false
}

// kernelModules opens the module tree the board's modules must resolve in:
// the one given, else Debian's kernel for the architecture (fetched with
// scripts/debpkg.sh from the mcinit source tree).
func kernelModules(dir, arch string) (*kmodules.Tree, error) {
	if dir == "" {
		pkg := map[string]string{"amd64": "linux-image-amd64", "arm64": "linux-image-arm64"}[arch]
		if pkg == "" {
			return nil, fmt.Errorf("no default kernel for %s: give -kernel-modules", arch)
		}
		src, err := moduleRoot()
		if err != nil {
			return nil, fmt.Errorf("finding Debian's kernel (or give -kernel-modules): %w", err)
		}
		// Debian's architecture names equal GOARCH for amd64 and arm64.
		out, err := exec.Command(filepath.Join(src, "scripts", "debpkg.sh"), arch, pkg).Output()
		if err != nil {
			return nil, fmt.Errorf("scripts/debpkg.sh %s %s: %w", arch, pkg, err)
		}
		m, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "lib", "modules", "*"))
		if len(m) != 1 {
			return nil, fmt.Errorf("%s: %d module trees, want 1 (give -kernel-modules)", pkg, len(m))
		}
		dir = m[0]
	}
	return modinfo.Open(dir)
}

// errChanged makes `boards diff` exit 3 when a re-import would change
// the file.
var errChanged = errors.New("a re-import would change the board")

func boardsDiff(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("boards diff", flag.ContinueOnError)
	var src sourceFlags
	src.register(fs)
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() != 3 {
		return usagef("usage: mcinit boards diff [flags] FILE NIXOS_HARDWARE_DIR PROFILE")
	}
	file, dir, profile := fs.Arg(0), fs.Arg(1), fs.Arg(2)
	data, err := boundedfile.ReadPath(file, boards.MaxFileSize)
	if err != nil {
		return err
	}
	old, err := boards.Parse(filepath.Base(file), data)
	if err != nil {
		return err
	}
	facts, prov, err := src.evaluate(dir, profile, stderr)
	if err != nil {
		return err
	}
	if src.repository == "" && old.Provenance.Repository != "" {
		// Where the checkout came from is not a change of the board.
		prov.Repository = old.Provenance.Repository
	}
	nb := *old
	nixhw.Apply(&nb, facts, prov)
	d := lineDiff(strings.SplitAfter(string(boards.Format(old)), "\n"), strings.SplitAfter(string(boards.Format(&nb)), "\n"))
	if d == "" {
		fmt.Fprintf(stdout, "%s: up to date with %s %s\n", file, prov.Profile, prov.Commit)
		return nil
	}
	fmt.Fprintf(stdout, "--- %s\n+++ %s %s@%s\n%s", file, dir, prov.Profile, prov.Commit, d)
	return rejected(errChanged)
}

// lineDiff gives the lines removed (-) and added (+) between a and b, in
// order, from their longest common subsequence; "" when equal.
func lineDiff(a, b []string) string {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var w strings.Builder
	i, j := 0, 0
	line := func(prefix, s string) { w.WriteString(prefix + strings.TrimSuffix(s, "\n") + "\n") }
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			i++
			j++
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			line("+", b[j])
			j++
		default:
			line("-", a[i])
			i++
		}
	}
	return w.String()
}
