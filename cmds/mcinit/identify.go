package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mcinit/mcinit/boards"
	"github.com/mcinit/mcinit/identity"
	"github.com/mcinit/mcinit/internal/boundedfile"
)

func init() {
	register("identify", "print this machine's (or a DTB/SMBIOS dump's) identity and matching board", runIdentify)
}

func runIdentify(args []string) error {
	fs := flag.NewFlagSet("identify", flag.ContinueOnError)
	dtb := fs.String("dtb", "", "read a flattened device tree `FILE` instead of this machine")
	smb := fs.String("smbios", "", "read SMBIOS from `FILE|DIR`: a raw dump (dmidecode --dump-bin), a tables directory (smbios_entry_point + DMI) or a /sys/class/dmi/id copy")
	boardDir := fs.String("boards", "", "board files `DIR` (default: the built-in boards)")
	generic := fs.Bool("allow-generic", false, "fall back to the generic board when none matches")
	sysRoot := fs.String("root", "/", "system `ROOT` holding sys/ when reading this machine")
	format := fs.String("format", "table", "output: table (for people), line (the canonical identity alone, for predict -identity and grants) or json")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if *format != "table" && *format != "line" && *format != "json" {
		return usagef("-format: %q is not table, line or json", *format)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *dtb != "" && *smb != "" {
		return usagef("give at most one of --dtb and --smbios")
	}
	var (
		id  identity.Identity
		err error
	)
	switch {
	case *dtb != "":
		var b []byte
		if b, err = boundedfile.ReadPath(*dtb, identity.MaxDTBSize); err == nil {
			id, err = identity.FromDTB(b)
		}
	case *smb != "":
		id, err = readSMBIOSPath(*smb)
	default:
		id, err = identity.Read(*sysRoot)
	}
	if err != nil {
		return err
	}
	if *format == "line" {
		// Exactly what /init measures and predict -identity takes; no board
		// matching, so it works for boards not yet described.
		fmt.Println(id.String())
		return nil
	}
	set, err := loadBoards(*boardDir)
	if err != nil {
		return err
	}
	b, merr := set.Match(id, *generic)
	if *format == "json" {
		out := identityJSON(id)
		if merr == nil {
			out.Board = b.Name
		}
		j, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return err
		}
		fmt.Println(string(j))
		if merr != nil {
			return rejected(merr)
		}
		return nil
	}
	printIdentity(id)
	if merr != nil {
		fmt.Printf("board:           (none)\n")
		return rejected(merr)
	}
	fmt.Printf("board:           %s\n", b.Name)
	return nil
}

// identifyOutput is identify's JSON form: the canonical line, its parts,
// and the matching board ("" when none matches).
type identifyOutput struct {
	Identity       string   `json:"identity"`
	Class          string   `json:"class"`
	DeviceID       string   `json:"device_id"`
	Source         string   `json:"source"`
	Arch           string   `json:"arch"`
	Compatible     []string `json:"compatible,omitempty"`
	Model          string   `json:"model,omitempty"`
	SysVendor      string   `json:"sys_vendor,omitempty"`
	ProductName    string   `json:"product_name,omitempty"`
	ProductVersion string   `json:"product_version,omitempty"`
	ProductFamily  string   `json:"product_family,omitempty"`
	ProductSKU     string   `json:"product_sku,omitempty"`
	BoardVendor    string   `json:"board_vendor,omitempty"`
	BoardName      string   `json:"board_name,omitempty"`
	BoardVersion   string   `json:"board_version,omitempty"`
	Serial         string   `json:"serial,omitempty"`
	UUID           string   `json:"uuid,omitempty"`
	Board          string   `json:"board"`
}

func identityJSON(id identity.Identity) identifyOutput {
	return identifyOutput{Identity: id.String(), Class: id.Class(), DeviceID: id.DeviceID(),
		Source: string(id.Source), Arch: id.Arch, Compatible: id.Compatible, Model: id.Model,
		SysVendor: id.SysVendor, ProductName: id.ProductName, ProductVersion: id.ProductVersion,
		ProductFamily: id.ProductFamily, ProductSKU: id.ProductSKU, BoardVendor: id.BoardVendor,
		BoardName: id.BoardName, BoardVersion: id.BoardVersion, Serial: id.Serial, UUID: id.SystemUUID}
}

func loadBoards(dir string) (*boards.Set, error) {
	if dir == "" {
		return boards.Shipped()
	}
	return boards.Load(os.DirFS(dir))
}

func printIdentity(id identity.Identity) {
	fmt.Printf("identity:        %s\n", id)
	fmt.Printf("device id:       %s\n", id.DeviceID())
	row := func(k, v string) {
		if v != "" {
			fmt.Printf("%-16s %s\n", k+":", v)
		}
	}
	row("source", string(id.Source))
	row("arch", id.Arch)
	row("compatible", strings.Join(id.Compatible, " "))
	row("model", id.Model)
	row("sys_vendor", id.SysVendor)
	row("product_name", id.ProductName)
	row("product_version", id.ProductVersion)
	row("product_family", id.ProductFamily)
	row("product_sku", id.ProductSKU)
	row("board_vendor", id.BoardVendor)
	row("board_name", id.BoardName)
	row("board_version", id.BoardVersion)
	row("serial", id.Serial)
	row("uuid", id.SystemUUID)
}

// readSMBIOSPath accepts the three usual shapes of SMBIOS data.
func readSMBIOSPath(p string) (identity.Identity, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return identity.Identity{}, err
	}
	if fi.IsDir() {
		ep := filepath.Join(p, "smbios_entry_point")
		if _, err := os.Stat(ep); err == nil {
			e, err := boundedfile.ReadPath(ep, 64)
			if err != nil {
				return identity.Identity{}, err
			}
			t, err := boundedfile.ReadPath(filepath.Join(p, "DMI"), identity.MaxSMBIOSSize)
			if err != nil {
				return identity.Identity{}, err
			}
			return identity.FromSMBIOS(e, t)
		}
		return identity.FromDMIDir(p)
	}
	b, err := boundedfile.ReadPath(p, identity.MaxSMBIOSSize+64)
	if err != nil {
		return identity.Identity{}, err
	}
	return identity.FromSMBIOSDump(b)
}
