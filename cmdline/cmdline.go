// Package cmdline parses a kernel command line with the kernel's own rules
// (lib/cmdline.c next_arg and kernel/params.c parse_args) and reads
// mcinit's flags from it. The command line is untrusted: anyone at the
// boot loader can edit it, so nothing here can do more than request.
package cmdline

import (
	"errors"
	"fmt"
	"strings"
)

// MaxSize bounds the input. The kernel's COMMAND_LINE_SIZE is 2-4 KiB on
// most architectures; anything far beyond is not a kernel command line.
const MaxSize = 64 << 10

// Param is one kernel parameter.
type Param struct {
	Name     string
	Value    string
	HasValue bool // "name=" has an empty value; "name" has none
}

// Cmdline is a parsed kernel command line.
type Cmdline struct {
	// Params are the kernel's parameters, before any "--", in order.
	Params []Param
	// InitArgs are the words after "--", which the kernel hands to init.
	InitArgs []string
	// Separator tells whether a "--" was present.
	Separator bool
}

// isSpace is the kernel's isspace(): ASCII white space and, because the
// kernel's ctype table is Latin-1, the no-break space 0xA0.
func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\v', '\f', '\r', 0xa0:
		return true
	}
	return false
}

func skipSpaces(s string) string {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	return s[i:]
}

// Parse splits raw (for example the content of /proc/cmdline) into
// parameters exactly as the kernel does: double quotes group white space,
// a leading quote of the word or of the value is stripped together with a
// final quote, and "--" ends the kernel's part.
func Parse(raw string) (*Cmdline, error) {
	if len(raw) > MaxSize {
		return nil, fmt.Errorf("command line is %d bytes, more than %d", len(raw), MaxSize)
	}
	if i := strings.IndexByte(raw, 0); i >= 0 {
		return nil, fmt.Errorf("command line has a NUL byte at offset %d", i)
	}
	c := &Cmdline{}
	args := skipSpaces(raw)
	for args != "" {
		var p Param
		p, args = nextArg(args)
		if !p.HasValue && p.Name == "--" {
			c.Separator = true
			break
		}
		c.Params = append(c.Params, p)
	}
	// The kernel passes the rest to init split the same way (words only).
	for args != "" {
		var p Param
		p, args = nextArg(args)
		w := p.Name
		if p.HasValue {
			w += "=" + p.Value
		}
		c.InitArgs = append(c.InitArgs, w)
	}
	return c, nil
}

// nextArg is the kernel's next_arg(), on a Go string: it returns the first
// parameter of args and the remainder with leading spaces skipped.
func nextArg(args string) (Param, string) {
	quoted, inQuote := false, false
	if args[0] == '"' {
		args = args[1:]
		quoted, inQuote = true, true
	}
	i, equals := 0, 0
	for ; i < len(args); i++ {
		if isSpace(args[i]) && !inQuote {
			break
		}
		// Like the kernel, an '=' at offset 0 does not count.
		if equals == 0 && args[i] == '=' {
			equals = i
		}
		if args[i] == '"' {
			inQuote = !inQuote
		}
	}
	word := []byte(args[:i])
	rest := args[i:]
	if rest != "" {
		rest = rest[1:] // the kernel overwrites the separator with NUL
	}
	// end marks where the C string ends after the kernel writes its NULs.
	end := len(word)
	var p Param
	valStart := -1
	if equals > 0 {
		p.HasValue = true
		valStart = equals + 1
		if valStart < len(word) && word[valStart] == '"' {
			valStart++
			if word[i-1] == '"' {
				end = i - 1
			}
		}
	}
	if quoted && i > 0 && word[i-1] == '"' {
		end = i - 1
	}
	if p.HasValue {
		p.Name = string(word[:equals])
		if valStart < end {
			p.Value = string(word[valStart:end])
		}
	} else {
		p.Name = string(word[:end])
	}
	return p, skipSpaces(rest)
}

// NameEqual compares parameter names as the kernel does: '-' and '_' are
// the same character.
func NameEqual(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == '-' {
			x = '_'
		}
		if y == '-' {
			y = '_'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Lookup returns every kernel parameter named name, in order.
func (c *Cmdline) Lookup(name string) []Param {
	var out []Param
	for _, p := range c.Params {
		if NameEqual(p.Name, name) {
			out = append(out, p)
		}
	}
	return out
}

// mcinit's own parameters.
const (
	FlagProfile = "mcinit.profile"
	FlagDebug   = "mcinit.debug"
	FlagShell   = "mcinit.shell"
	flagPrefix  = "mcinit."
)

// Profile request values.
const (
	ProfileNone        = ""
	ProfileProduction  = "production"
	ProfileDevelopment = "development"
	ProfileMalformed   = "malformed"
)

// Flags are mcinit's parameters as read from the kernel part of the
// command line (words after "--" belong to init's argv and are not read).
//
// Repetition rules, all falling to the safe side: mcinit.profile repeated
// with the same value is that value; repeated with different values, or
// with any value other than production/development, it is malformed
// (production plus a warning). A boolean flag ("mcinit.debug", or
// "mcinit.debug=1|y|yes|true|on", "=0|n|no|false|off") is set only when all
// its occurrences agree on true; an unparsable value or disagreement leaves
// it off, with a warning. Unknown mcinit.* names get a warning.
type Flags struct {
	Profile  string // ProfileNone, ProfileProduction, ProfileDevelopment or ProfileMalformed
	Debug    bool
	Shell    bool
	Warnings []string
}

// Flags extracts mcinit's flags.
func (c *Cmdline) Flags() Flags {
	var f Flags
	f.Profile = c.profile(&f.Warnings)
	f.Debug = c.boolFlag(FlagDebug, &f.Warnings)
	f.Shell = c.boolFlag(FlagShell, &f.Warnings)
	for _, p := range c.Params {
		if strings.HasPrefix(p.Name, flagPrefix) && !NameEqual(p.Name, FlagProfile) &&
			!NameEqual(p.Name, FlagDebug) && !NameEqual(p.Name, FlagShell) {
			f.Warnings = append(f.Warnings, fmt.Sprintf("unknown parameter %s ignored", quoteName(p.Name)))
		}
	}
	return f
}

func (c *Cmdline) profile(warn *[]string) string {
	ps := c.Lookup(FlagProfile)
	if len(ps) == 0 {
		return ProfileNone
	}
	val := ""
	for i, p := range ps {
		v := p.Value
		if !p.HasValue || (v != ProfileProduction && v != ProfileDevelopment) {
			*warn = append(*warn, fmt.Sprintf("%s=%s is not production or development: malformed request, booting production", FlagProfile, quoteValue(p)))
			return ProfileMalformed
		}
		if i > 0 && v != val {
			*warn = append(*warn, fmt.Sprintf("%s given %d times with different values: malformed request, booting production", FlagProfile, len(ps)))
			return ProfileMalformed
		}
		val = v
	}
	return val
}

func (c *Cmdline) boolFlag(name string, warn *[]string) bool {
	ps := c.Lookup(name)
	if len(ps) == 0 {
		return false
	}
	on := 0
	for _, p := range ps {
		v, err := parseBool(p)
		if err != nil {
			*warn = append(*warn, fmt.Sprintf("%s=%s: %v: flag off", name, quoteValue(p), err))
			return false
		}
		if v {
			on++
		}
	}
	if on != 0 && on != len(ps) {
		*warn = append(*warn, fmt.Sprintf("%s given %d times with different values: flag off", name, len(ps)))
		return false
	}
	return on > 0
}

func parseBool(p Param) (bool, error) {
	if !p.HasValue {
		return true, nil
	}
	switch p.Value {
	case "1", "y", "yes", "true", "on":
		return true, nil
	case "0", "n", "no", "false", "off":
		return false, nil
	}
	return false, errors.New("not a boolean")
}

// quoteValue and quoteName keep warnings to one printable, bounded line.
func quoteValue(p Param) string {
	if !p.HasValue {
		return "(none)"
	}
	return clip(fmt.Sprintf("%q", p.Value))
}

func quoteName(n string) string { return clip(fmt.Sprintf("%q", n)) }

func clip(s string) string {
	const maxLen = 80
	if len(s) > maxLen {
		return s[:maxLen] + "..."
	}
	return s
}
