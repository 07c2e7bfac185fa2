// Package boards holds the board definitions (one TOML file per board, in
// this directory) and matches a hardware identity against them.
//
// The shipped files are embedded, so host tools have them; /init reads the
// copies the initramfs builder puts in /etc/mcinit/boards/ through Load.
package boards

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/mcinit/mcinit/identity"
	"github.com/mcinit/mcinit/internal/boundedfile"
)

//go:embed *.toml
var shipped embed.FS

// Limits on board files, which are small and written by people.
const (
	MaxFileSize   = 64 << 10
	MaxRules      = 32
	MaxModules    = 128
	MaxFirmware   = 64
	MaxParams     = 64 // kernel_params entries
	MaxOverlays   = 64
	MaxRootWait   = 600 // seconds
	maxPattern    = 256
	maxParams     = 1024
	maxNotes      = 8 << 10
	maxModuleName = 55 // the kernel's MODULE_NAME_LEN (64 − 8 on 64-bit) minus the NUL
)

// Arches a board can name (GOARCH spelling).
var Arches = []string{"amd64", "arm64"}

// GenericName is the fallback board for an architecture.
func GenericName(arch string) string {
	switch arch {
	case "amd64":
		return "generic-x86_64"
	case "arm64":
		return "generic-aarch64"
	}
	return "generic-" + arch
}

// Board is one board definition.
type Board struct {
	Name    string   `toml:"name"`    // equals the file name without .toml
	Arch    string   `toml:"arch"`    // amd64 | arm64
	Generic bool     `toml:"generic"` // the architecture's fallback; has no match rules
	Match   []Rule   `toml:"match"`   // any rule matching selects the board
	Modules []Module `toml:"modules"` // loaded in this order (dependencies are added)
	Quirks  Quirks   `toml:"quirks"`
	Notes   string   `toml:"notes"`

	// SystemModules are modules for the booted system (NixOS's
	// boot.kernelModules): /init does not load them; they are checked to
	// exist in the board's kernel and recorded for the root system.
	SystemModules []string `toml:"system_modules"`
	// Blacklist names modules that must not be loaded (NixOS's
	// boot.blacklistedKernelModules): none may be in Modules or in their
	// dependency closure.
	Blacklist []string `toml:"blacklist"`
	// KernelParams are kernel command-line parameters the board needs
	// (boot.kernelParams). /init cannot change its own command line: the
	// UKI builder puts them on the UKI's command line and /init checks
	// that each one is on /proc/cmdline (see docs/boards.md).
	KernelParams []string `toml:"kernel_params"`
	// DeviceTree is hardware.deviceTree: which .dtb the boot loader or UKI
	// gives the kernel, and the overlays applied to it.
	DeviceTree DeviceTree `toml:"device_tree"`
	// Recorded holds facts carried for people and verifiers but not acted
	// on by mcinit.
	Recorded Recorded `toml:"recorded"`
	// Provenance says where an imported board's configuration came from;
	// the board event measures it.
	Provenance Provenance `toml:"provenance"`
}

// DeviceTree is the board's device-tree selection.
type DeviceTree struct {
	Name     string    `toml:"name"`   // hardware.deviceTree.name: the .dtb, e.g. "rockchip/rk3399-pinebook-pro.dtb"
	Filter   string    `toml:"filter"` // hardware.deviceTree.filter: a glob over .dtb file names
	Overlays []Overlay `toml:"overlays"`
}

// Overlay is one device-tree overlay of hardware.deviceTree.overlays, by
// name; its source stays in the nixos-hardware checkout the provenance
// names.
type Overlay struct {
	Name   string `toml:"name"`
	Filter string `toml:"filter"` // the .dtb files it applies to (glob); empty means every one
}

// Recorded facts: what the profile selects that mcinit does not act on.
type Recorded struct {
	// KernelPackage is the nixpkgs attribute of boot.kernelPackages
	// ("linuxPackages_latest").
	KernelPackage string `toml:"kernel_package"`
	// Firmware lists the firmware packages of hardware.firmware, as
	// nixpkgs attribute paths.
	Firmware []string `toml:"firmware"`
	// RedistributableFirmware is hardware.enableRedistributableFirmware.
	RedistributableFirmware bool `toml:"redistributable_firmware"`
}

// Provenance of an imported board.
type Provenance struct {
	Source     string `toml:"source"`     // "nixos-hardware" (the only importer so far)
	Repository string `toml:"repository"` // where the checkout came from (URL of upstream or a fork); informational
	Commit     string `toml:"commit"`     // the checkout's commit (hex SHA-1 or SHA-256)
	Profile    string `toml:"profile"`    // profile path inside it ("pine64/pinebook-pro")
}

// Imported says whether the board carries provenance.
func (p Provenance) Imported() bool { return p.Source != "" }

// Rule is one way of recognising the board: either device-tree compatible
// strings or DMI field patterns, never both. Every DMI field given must
// match (glob syntax of path.Match, case-sensitive); any one compatible
// string given matching an entry of the identity's root compatible list is
// enough.
type Rule struct {
	Compatible []string `toml:"compatible"`

	SysVendor      string `toml:"sys_vendor"`
	ProductName    string `toml:"product_name"`
	ProductVersion string `toml:"product_version"`
	ProductFamily  string `toml:"product_family"`
	ProductSKU     string `toml:"product_sku"`
	BoardVendor    string `toml:"board_vendor"`
	BoardName      string `toml:"board_name"`
	BoardVersion   string `toml:"board_version"`
}

// Module is a kernel module to load, with its parameters.
type Module struct {
	Name   string `toml:"name"`
	Params string `toml:"params"`
	// Profile limits the module to one boot profile: "development" modules
	// (overlayfs, say) are loaded only after the decision selected
	// development, so a production boot never has them. Empty means always.
	Profile string `toml:"profile"`
	// From names the NixOS option an imported module came from
	// ("boot.initrd.kernelModules" or "boot.initrd.availableKernelModules");
	// empty for hand-written entries. Re-imports and `mcinit boards diff`
	// only touch entries that have it.
	From string `toml:"from"`
}

// Module origins (Module.From).
const (
	FromInitrdKernelModules    = "boot.initrd.kernelModules"
	FromInitrdAvailableModules = "boot.initrd.availableKernelModules"
)

// ModulesFor lists the board's modules a boot of profile needs ("" lists
// the ones every boot loads before the decision).
func (b *Board) ModulesFor(profile string) []Module {
	var out []Module
	for _, m := range b.Modules {
		if m.Profile == profile {
			out = append(out, m)
		}
	}
	return out
}

// MissingParams lists the board's kernel parameters that are not words of
// the command line (the kernel's quotes around a word are ignored).
func (b *Board) MissingParams(cmdline string) []string {
	have := map[string]bool{}
	for _, w := range strings.Fields(cmdline) {
		have[strings.ReplaceAll(w, `"`, "")] = true
	}
	var out []string
	for _, p := range b.KernelParams {
		if !have[p] {
			out = append(out, p)
		}
	}
	return out
}

// Quirks are the board's special needs at boot.
type Quirks struct {
	// RootWait is how many seconds /init waits for the root device to
	// appear (slow SD/USB controllers); 0 means the default.
	RootWait int `toml:"root_wait"`
	// Console is the kernel console the board's serial port is on, in
	// console= syntax ("ttymxc0,115200"); informational for /init's log
	// and for the image builder's default command line.
	Console string `toml:"console"`
	// Firmware lists files under /lib/firmware the initramfs builder must
	// include because a listed module requests them at load time.
	Firmware []string `toml:"firmware"`
}

// dmiFields pairs each DMI rule field with its identity value, in a fixed
// order.
func (r *Rule) dmiFields(id *identity.Identity) [8][3]string {
	return [8][3]string{
		{"sys_vendor", r.SysVendor, id.SysVendor},
		{"product_name", r.ProductName, id.ProductName},
		{"product_version", r.ProductVersion, id.ProductVersion},
		{"product_family", r.ProductFamily, id.ProductFamily},
		{"product_sku", r.ProductSKU, id.ProductSKU},
		{"board_vendor", r.BoardVendor, id.BoardVendor},
		{"board_name", r.BoardName, id.BoardName},
		{"board_version", r.BoardVersion, id.BoardVersion},
	}
}

// bounded is a pattern whose length limit is checked apart: a counted
// repetition such as {1,256} compiles to that many copies of its class,
// and compiling these patterns at package init took 11 ms of /init's
// start under QEMU (GODEBUG=inittrace=1). The classes are ASCII, so bytes
// are characters.
type bounded struct {
	re  *regexp.Regexp
	max int
}

func (b bounded) MatchString(s string) bool { return len(s) <= b.max && b.re.MatchString(s) }

var (
	nameRE     = bounded{regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`), 64}
	moduleRE   = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	consoleRE  = bounded{regexp.MustCompile(`^[A-Za-z0-9_,.:/-]+$`), 64}
	firmwareRE = regexp.MustCompile(`^[A-Za-z0-9_.+,@-]+(/[A-Za-z0-9_.+,@-]+)*$`)
	// A kernel parameter: no spaces (one word of the command line), no
	// quotes (the kernel's quoting would change its meaning).
	paramRE   = bounded{regexp.MustCompile(`^[A-Za-z0-9_.,:/=+@%-]+$`), 256}
	dtbRE     = regexp.MustCompile(`^[A-Za-z0-9_.,+-]+(/[A-Za-z0-9_.,+-]+)*$`)
	globRE    = bounded{regexp.MustCompile(`^[A-Za-z0-9_.,+*?/\[\]-]+$`), 256}
	attrRE    = bounded{regexp.MustCompile(`^[A-Za-z0-9_.'"()+-]+$`), 256}
	commitRE  = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)
	profileRE = regexp.MustCompile(`^[A-Za-z0-9_.+-]+(/[A-Za-z0-9_.+-]+)*$`)
)

// Parse strictly parses one board file. filename is the file's base name
// ("qemu-x86_64.toml"); the board's name must equal it without ".toml".
// Unknown keys, duplicate keys, wrong types and out-of-range values are
// errors naming the file and the field.
func Parse(filename string, data []byte) (*Board, error) {
	b, err := parse(filename, data)
	if err != nil {
		return nil, fmt.Errorf("board file %s: %w", filename, err)
	}
	return b, nil
}

func parse(filename string, data []byte) (*Board, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%d bytes is larger than the %d-byte limit", len(data), MaxFileSize)
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, errors.New("contains a NUL byte")
	}
	var b Board
	md, err := toml.Decode(string(data), &b)
	if err != nil {
		return nil, oneLine(err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("unknown field %q", und[0].String())
	}
	if want := strings.TrimSuffix(path.Base(filename), ".toml"); b.Name != want {
		return nil, fmt.Errorf("name: %q must equal the file name %q", b.Name, want)
	}
	if !nameRE.MatchString(b.Name) {
		return nil, fmt.Errorf("name: %q is not lower-case letters, digits, '.', '_', '-' (at most 64)", b.Name)
	}
	if !isArch(b.Arch) {
		return nil, fmt.Errorf("arch: %q is not one of %s", b.Arch, strings.Join(Arches, ", "))
	}
	switch {
	case b.Generic && len(b.Match) > 0:
		return nil, errors.New("match: a generic board has no match rules")
	case b.Generic && b.Name != GenericName(b.Arch):
		return nil, fmt.Errorf("generic: the generic %s board must be named %q", b.Arch, GenericName(b.Arch))
	case !b.Generic && len(b.Match) == 0:
		return nil, errors.New("match: at least one rule is needed (or generic = true)")
	case len(b.Match) > MaxRules:
		return nil, fmt.Errorf("match: %d rules is more than %d", len(b.Match), MaxRules)
	}
	for i := range b.Match {
		if err := b.Match[i].check(); err != nil {
			return nil, fmt.Errorf("match[%d].%w", i, err)
		}
	}
	if len(b.Modules) > MaxModules {
		return nil, fmt.Errorf("modules: %d entries is more than %d", len(b.Modules), MaxModules)
	}
	seen := map[string]bool{}
	for i, m := range b.Modules {
		if len(m.Name) > maxModuleName || !moduleRE.MatchString(m.Name) {
			return nil, fmt.Errorf("modules[%d].name: %q is not a module name", i, m.Name)
		}
		n := NormalizeModule(m.Name)
		if seen[n] {
			return nil, fmt.Errorf("modules[%d].name: %q is listed twice", i, m.Name)
		}
		seen[n] = true
		if m.Profile != "" && m.Profile != "development" {
			return nil, fmt.Errorf("modules[%d].profile: %q must be \"development\" or absent", i, m.Profile)
		}
		if len(m.Params) > maxParams || !printable(m.Params) {
			return nil, fmt.Errorf("modules[%d].params: must be printable ASCII, at most %d bytes", i, maxParams)
		}
		if m.From != "" && m.From != FromInitrdKernelModules && m.From != FromInitrdAvailableModules {
			return nil, fmt.Errorf("modules[%d].from: %q must be %q, %q or absent", i, m.From, FromInitrdKernelModules, FromInitrdAvailableModules)
		}
	}
	if err := checkNames("system_modules", b.SystemModules, nil); err != nil {
		return nil, err
	}
	if err := checkNames("blacklist", b.Blacklist, seen); err != nil {
		return nil, err
	}
	if err := b.checkExtra(); err != nil {
		return nil, err
	}
	q := b.Quirks
	if q.RootWait < 0 || q.RootWait > MaxRootWait {
		return nil, fmt.Errorf("quirks.root_wait: %d is outside 0..%d seconds", q.RootWait, MaxRootWait)
	}
	if q.Console != "" && !consoleRE.MatchString(q.Console) {
		return nil, fmt.Errorf("quirks.console: %q is not a console= value", q.Console)
	}
	if len(q.Firmware) > MaxFirmware {
		return nil, fmt.Errorf("quirks.firmware: %d entries is more than %d", len(q.Firmware), MaxFirmware)
	}
	for i, f := range q.Firmware {
		if len(f) > 256 || !firmwareRE.MatchString(f) || hasDotDot(f) {
			return nil, fmt.Errorf("quirks.firmware[%d]: %q is not a relative path under /lib/firmware", i, f)
		}
	}
	if len(b.Notes) > maxNotes {
		return nil, fmt.Errorf("notes: longer than %d bytes", maxNotes)
	}
	return &b, nil
}

// checkNames checks a list of module names: valid, no duplicates, and
// none in forbidden (the modules /init loads, for the blacklist).
func checkNames(field string, names []string, forbidden map[string]bool) error {
	if len(names) > MaxModules {
		return fmt.Errorf("%s: %d entries is more than %d", field, len(names), MaxModules)
	}
	seen := map[string]bool{}
	for i, m := range names {
		if len(m) > maxModuleName || !moduleRE.MatchString(m) {
			return fmt.Errorf("%s[%d]: %q is not a module name", field, i, m)
		}
		n := NormalizeModule(m)
		if seen[n] {
			return fmt.Errorf("%s[%d]: %q is listed twice", field, i, m)
		}
		seen[n] = true
		if forbidden[n] {
			return fmt.Errorf("%s[%d]: %q is also in modules", field, i, m)
		}
	}
	return nil
}

// checkExtra checks the fields imported from nixos-hardware.
func (b *Board) checkExtra() error {
	if len(b.KernelParams) > MaxParams {
		return fmt.Errorf("kernel_params: %d entries is more than %d", len(b.KernelParams), MaxParams)
	}
	for i, p := range b.KernelParams {
		if !paramRE.MatchString(p) {
			return fmt.Errorf("kernel_params[%d]: %q is not one command-line word (letters, digits, _.,:/=+@%%-; at most 256 bytes)", i, p)
		}
	}
	dt := b.DeviceTree
	if dt.Name != "" && (len(dt.Name) > 256 || !dtbRE.MatchString(dt.Name) || hasDotDot(dt.Name)) {
		return fmt.Errorf("device_tree.name: %q is not a relative .dtb path", dt.Name)
	}
	if err := checkGlob("device_tree.filter", dt.Filter); err != nil {
		return err
	}
	if len(dt.Overlays) > MaxOverlays {
		return fmt.Errorf("device_tree.overlays: %d entries is more than %d", len(dt.Overlays), MaxOverlays)
	}
	for i, o := range dt.Overlays {
		if o.Name == "" || len(o.Name) > 256 || !printable(o.Name) {
			return fmt.Errorf("device_tree.overlays[%d].name: must be printable ASCII, 1 to 256 bytes", i)
		}
		if err := checkGlob(fmt.Sprintf("device_tree.overlays[%d].filter", i), o.Filter); err != nil {
			return err
		}
	}
	r := b.Recorded
	if r.KernelPackage != "" && !attrRE.MatchString(r.KernelPackage) {
		return fmt.Errorf("recorded.kernel_package: %q is not a nixpkgs attribute path", r.KernelPackage)
	}
	if len(r.Firmware) > MaxFirmware {
		return fmt.Errorf("recorded.firmware: %d entries is more than %d", len(r.Firmware), MaxFirmware)
	}
	for i, f := range r.Firmware {
		if !attrRE.MatchString(f) {
			return fmt.Errorf("recorded.firmware[%d]: %q is not a nixpkgs attribute path", i, f)
		}
	}
	p := b.Provenance
	switch {
	case p == Provenance{}:
		return nil
	case p.Source != "nixos-hardware":
		return fmt.Errorf("provenance.source: %q must be \"nixos-hardware\"", p.Source)
	case !commitRE.MatchString(p.Commit):
		return fmt.Errorf("provenance.commit: %q is not a lower-case hex commit id", p.Commit)
	case len(p.Profile) > 256 || !profileRE.MatchString(p.Profile) || hasDotDot(p.Profile):
		return fmt.Errorf("provenance.profile: %q is not a relative profile path", p.Profile)
	case len(p.Repository) > 256 || !printable(p.Repository):
		return fmt.Errorf("provenance.repository: must be printable ASCII, at most 256 bytes")
	}
	return nil
}

func checkGlob(field, g string) error {
	if g == "" {
		return nil
	}
	if !globRE.MatchString(g) {
		return fmt.Errorf("%s: %q is not a file-name glob", field, g)
	}
	if _, err := path.Match(g, ""); err != nil {
		return fmt.Errorf("%s: bad pattern %q: %v", field, g, err)
	}
	return nil
}

func (r *Rule) check() error {
	dmi := 0
	for _, f := range r.dmiFields(&identity.Identity{}) {
		if f[1] == "" {
			continue
		}
		dmi++
		if len(f[1]) > maxPattern || !printable(f[1]) {
			return fmt.Errorf("%s: must be printable ASCII, at most %d bytes", f[0], maxPattern)
		}
		if _, err := path.Match(f[1], ""); err != nil {
			return fmt.Errorf("%s: bad pattern %q: %v", f[0], f[1], err)
		}
	}
	switch {
	case dmi > 0 && len(r.Compatible) > 0:
		return errors.New("compatible: a rule is either compatible or DMI fields, not both")
	case dmi == 0 && len(r.Compatible) == 0:
		return errors.New("compatible: empty rule (give compatible or DMI fields)")
	case len(r.Compatible) > identity.MaxCompatible:
		return fmt.Errorf("compatible: more than %d entries", identity.MaxCompatible)
	}
	for i, c := range r.Compatible {
		if c == "" || len(c) > identity.MaxField || !printable(c) {
			return fmt.Errorf("compatible[%d]: %q must be printable ASCII, 1 to %d bytes", i, c, identity.MaxField)
		}
	}
	return nil
}

// NormalizeModule gives the kernel's spelling of a module name ('-' and '_'
// are the same).
func NormalizeModule(name string) string { return strings.ReplaceAll(name, "-", "_") }

func isArch(a string) bool {
	for _, x := range Arches {
		if a == x {
			return true
		}
	}
	return false
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func hasDotDot(p string) bool {
	for _, e := range strings.Split(p, "/") {
		if e == "." || e == ".." {
			return true
		}
	}
	return false
}

// oneLine keeps TOML errors to one line (the toml package's extended
// forms span several).
func oneLine(err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("line %d: %s", pe.Position.Line, strings.ReplaceAll(pe.Message, "\n", " "))
	}
	return errors.New(strings.ReplaceAll(err.Error(), "\n", " "))
}

// Set is a validated collection of boards with unique names.
type Set struct {
	boards []*Board // sorted by name
}

// Load parses every *.toml file at the top of fsys (a directory such as
// /etc/mcinit/boards via os.DirFS, or the embedded files).
func Load(fsys fs.FS) (*Set, error) {
	names, err := fs.Glob(fsys, "*.toml")
	if err != nil {
		return nil, fmt.Errorf("boards: %w", err)
	}
	var bs []*Board
	for _, n := range names {
		data, err := readBoardFile(fsys, n)
		if err != nil {
			return nil, err
		}
		b, err := Parse(n, data)
		if err != nil {
			return nil, err
		}
		bs = append(bs, b)
	}
	return NewSet(bs...)
}

// readBoardFile reads one board file of at most MaxFileSize bytes.
func readBoardFile(fsys fs.FS, name string) ([]byte, error) {
	b, err := boundedfile.Read(fsys, name, MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("board file: %w", err)
	}
	return b, nil
}

// NewSet builds a set from parsed boards; names must be unique and there
// is at most one generic board per architecture.
func NewSet(bs ...*Board) (*Set, error) {
	s := &Set{boards: append([]*Board(nil), bs...)}
	sort.Slice(s.boards, func(i, j int) bool { return s.boards[i].Name < s.boards[j].Name })
	for i := 1; i < len(s.boards); i++ {
		if s.boards[i].Name == s.boards[i-1].Name {
			return nil, fmt.Errorf("boards: %q is defined twice", s.boards[i].Name)
		}
	}
	return s, nil
}

// Shipped is the set of board files built into this binary.
func Shipped() (*Set, error) { return Load(shipped) }

// ShippedFS is the embedded board files, for the initramfs builder to copy.
func ShippedFS() fs.FS { return shipped }

// Boards lists the set's boards, sorted by name.
func (s *Set) Boards() []*Board { return append([]*Board(nil), s.boards...) }

// Get finds a board by name.
func (s *Set) Get(name string) (*Board, bool) {
	for _, b := range s.boards {
		if b.Name == name {
			return b, true
		}
	}
	return nil, false
}
