package identity

import (
	"fmt"
	"strings"
)

// MaxString bounds a canonical identity string given to Parse.
const MaxString = 16 << 10

// Parse reads an identity's canonical string (Identity.String, as
// `mcinit identify` prints it and /run/mcinit/identity holds it). It
// accepts only what String produces: every field of the source, in order,
// printable ASCII, so Parse(s).String() == s.
func Parse(s string) (Identity, error) {
	if len(s) > MaxString {
		return Identity{}, fmt.Errorf("identity: %d bytes, more than %d", len(s), MaxString)
	}
	p := &parser{s: s}
	var id Identity
	id.Source = Source(p.bare("source"))
	id.Arch = p.bare("arch")
	switch id.Source {
	case SourceDT:
		id.Compatible = p.list("compatible")
		id.Model = p.quoted("model")
		id.Serial = p.quoted("serial")
	case SourceDMI, "":
		for i, f := range []*string{&id.SysVendor, &id.ProductName, &id.ProductVersion, &id.ProductFamily,
			&id.ProductSKU, &id.BoardVendor, &id.BoardName, &id.BoardVersion, &id.Serial, &id.SystemUUID} {
			*f = p.quoted(dmiKeys[i])
		}
	default:
		p.fail("source %q: want dt or dmi", id.Source)
	}
	if p.err == nil && p.s != "" {
		p.fail("trailing text %q", cut(p.s))
	}
	if p.err != nil {
		return Identity{}, fmt.Errorf("identity %q: %w", cut(s), p.err)
	}
	if id.Arch == "" {
		return Identity{}, fmt.Errorf("identity %q: no arch", cut(s))
	}
	if got := id.String(); got != s {
		return Identity{}, fmt.Errorf("identity %q: not canonical (want %q)", cut(s), cut(got))
	}
	return id, nil
}

// dmiKeys are the DMI fields in String's order.
var dmiKeys = []string{"sys_vendor", "product_name", "product_version", "product_family",
	"product_sku", "board_vendor", "board_name", "board_version", "serial", "uuid"}

func cut(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

type parser struct {
	s   string
	err error
}

func (p *parser) fail(format string, a ...any) {
	if p.err == nil {
		p.err = fmt.Errorf(format, a...)
	}
}

// key consumes "[ ]key=".
func (p *parser) key(k string) bool {
	if p.err != nil {
		return false
	}
	want := k + "="
	if k != "source" {
		want = " " + want
	}
	if !strings.HasPrefix(p.s, want) {
		p.fail("want %s= at %q", k, cut(p.s))
		return false
	}
	p.s = p.s[len(want):]
	return true
}

// bare reads an unquoted value (source, arch): up to the next space.
func (p *parser) bare(k string) string {
	if !p.key(k) {
		return ""
	}
	i := strings.IndexByte(p.s, ' ')
	if i < 0 {
		i = len(p.s)
	}
	v := p.s[:i]
	for j := 0; j < len(v); j++ {
		if c := v[j]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			p.fail("%s: bad character %q", k, c)
			return ""
		}
	}
	p.s = p.s[i:]
	return v
}

// str reads one double-quoted string with \\ and \" escapes.
func (p *parser) str(k string) string {
	if p.err != nil {
		return ""
	}
	if !strings.HasPrefix(p.s, `"`) {
		p.fail("%s: want a quoted value", k)
		return ""
	}
	var b strings.Builder
	for i := 1; i < len(p.s); i++ {
		c := p.s[i]
		switch {
		case c == '"':
			p.s = p.s[i+1:]
			return b.String()
		case c == '\\' && i+1 < len(p.s) && (p.s[i+1] == '\\' || p.s[i+1] == '"'):
			i++
			b.WriteByte(p.s[i])
		case c < 0x20 || c > 0x7e || c == '\\':
			p.fail("%s: bad character %q", k, c)
			return ""
		default:
			b.WriteByte(c)
		}
	}
	p.fail("%s: unterminated value", k)
	return ""
}

func (p *parser) quoted(k string) string {
	if !p.key(k) {
		return ""
	}
	return p.str(k)
}

// list reads ["a","b"].
func (p *parser) list(k string) []string {
	if !p.key(k) {
		return nil
	}
	if !strings.HasPrefix(p.s, "[") {
		p.fail("%s: want [", k)
		return nil
	}
	p.s = p.s[1:]
	var out []string
	for p.err == nil {
		if strings.HasPrefix(p.s, "]") {
			p.s = p.s[1:]
			return out
		}
		if len(out) > 0 {
			if !strings.HasPrefix(p.s, ",") {
				p.fail("%s: want , or ]", k)
				return nil
			}
			p.s = p.s[1:]
		}
		if len(out) == MaxCompatible {
			p.fail("%s: more than %d entries", k, MaxCompatible)
			return nil
		}
		out = append(out, p.str(k))
	}
	return nil
}
