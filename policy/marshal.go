package policy

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// Marshal writes p as a policy document in the one canonical layout: the
// fields in the order of the struct, a field only when it is set (a
// non-zero value, a non-nil pointer or slice), format and version always,
// the rollback NV index in hex. The same policy always gives the same
// bytes, and for a policy Parse returned, Parse(Marshal(p)) equals p.
// Marshal does not validate: Parse (and so `mcinit policy sign`) does.
func Marshal(p *Policy) ([]byte, error) {
	w := &writer{}
	w.int("format", int64(p.Format), true)
	w.uint("version", p.Version, true)
	w.strings("boards", p.Boards)
	w.bool("allow_unknown_boards", p.AllowUnknownBoards)
	w.int("pcr", int64(p.PCR), false)

	pr := &p.Production
	if pr.VerityError != "" || pr.LockModules != nil || pr.TPMRequired != nil || pr.RollbackNVIndex != 0 {
		w.table("production")
		w.string("verity_error", string(pr.VerityError))
		w.boolPtr("lock_modules", pr.LockModules)
		w.boolPtr("tpm_required", pr.TPMRequired)
		if pr.RollbackNVIndex != 0 {
			w.line("rollback_nv_index", fmt.Sprintf("0x%08x", pr.RollbackNVIndex))
		}
	}
	if pr.Roots != nil && len(pr.Roots) == 0 {
		w.table("production")
		w.line("root", "[]")
	}
	for _, r := range pr.Roots {
		w.arrayTable("production.root")
		w.root(r)
	}

	d := &p.Development
	if d.AllowBoards != nil || d.AllowGrants || d.Upper != "" || d.UpperPartLabel != "" || d.CreateUpper ||
		d.VerifyLower != nil || d.RescueShell || d.RescueTimeout != 0 || (d.AllowDevices != nil && len(d.AllowDevices) == 0) {
		w.table("development")
		w.strings("allow_boards", d.AllowBoards)
		if d.AllowDevices != nil && len(d.AllowDevices) == 0 {
			w.line("allow_devices", "[]")
		}
		w.bool("allow_grants", d.AllowGrants)
		w.string("upper", d.Upper)
		w.string("upper_partlabel", d.UpperPartLabel)
		w.bool("create_upper", d.CreateUpper)
		w.boolPtr("verify_lower", d.VerifyLower)
		w.bool("rescue_shell", d.RescueShell)
		w.int("rescue_timeout", int64(d.RescueTimeout), false)
	}
	for _, dev := range d.AllowDevices {
		w.arrayTable("development.allow_devices")
		w.string("board", dev.Board)
		w.string("device_id", dev.DeviceID)
	}
	return w.done()
}

// MarshalRoot writes one [[production.root]] table, by the rules of
// Marshal: the entry `mcinit image` prints for pasting into a policy.
func MarshalRoot(r Root) ([]byte, error) {
	w := &writer{}
	w.b.WriteString("[[production.root]]\n")
	w.root(r)
	return w.done()
}

func (w *writer) root(r Root) {
	w.string("name", r.Name)
	w.string("root_hash", r.RootHash)
	w.string("hash_algorithm", r.HashAlgorithm)
	w.string("salt", r.Salt)
	w.uint("data_blocks", r.DataBlocks, false)
	w.string("data_partlabel", r.DataPartLabel)
	w.string("hash_partlabel", r.HashPartLabel)
}

// MarshalGrant writes g as a grant document, by the rules of Marshal.
// SignedBy is not part of the document.
func MarshalGrant(g *Grant) ([]byte, error) {
	w := &writer{}
	w.int("format", int64(g.Format), true)
	w.string("board", g.Board)
	w.string("device_id", g.DeviceID)
	if g.MinPolicyVersion != nil {
		w.uint("min_policy_version", *g.MinPolicyVersion, true)
	}
	if g.MaxPolicyVersion != nil {
		w.uint("max_policy_version", *g.MaxPolicyVersion, true)
	}
	w.string("not_after", g.NotAfter)
	return w.done()
}

// writer accumulates a TOML document; the first error sticks.
type writer struct {
	b      bytes.Buffer
	tables map[string]bool
	err    error
}

func (w *writer) done() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	return w.b.Bytes(), nil
}

func (w *writer) line(key, value string) {
	fmt.Fprintf(&w.b, "%s = %s\n", key, value)
}

// table starts [name] once, after a blank line.
func (w *writer) table(name string) {
	if w.tables[name] {
		return
	}
	if w.tables == nil {
		w.tables = map[string]bool{}
	}
	w.tables[name] = true
	w.b.WriteString("\n[" + name + "]\n")
}

func (w *writer) arrayTable(name string) {
	w.b.WriteString("\n[[" + name + "]]\n")
}

func (w *writer) string(key, s string) {
	if s == "" {
		return
	}
	q, err := quote(key, s)
	if err != nil {
		w.fail(err)
		return
	}
	w.line(key, q)
}

func (w *writer) strings(key string, ss []string) {
	if ss == nil {
		return
	}
	var b bytes.Buffer
	b.WriteByte('[')
	for i, s := range ss {
		if i > 0 {
			b.WriteString(", ")
		}
		q, err := quote(fmt.Sprintf("%s[%d]", key, i), s)
		if err != nil {
			w.fail(err)
			return
		}
		b.WriteString(q)
	}
	b.WriteByte(']')
	w.line(key, b.String())
}

func (w *writer) bool(key string, v bool) {
	if v {
		w.line(key, "true")
	}
}

func (w *writer) boolPtr(key string, v *bool) {
	if v != nil {
		w.line(key, strconv.FormatBool(*v))
	}
}

func (w *writer) int(key string, v int64, always bool) {
	if v != 0 || always {
		w.line(key, strconv.FormatInt(v, 10))
	}
}

// uint writes an unsigned field; TOML integers are 64-bit signed, so larger
// values have no spelling.
func (w *writer) uint(key string, v uint64, always bool) {
	if v > math.MaxInt64 {
		w.fail(fmt.Errorf("field %s: %d is more than TOML's largest integer %d", key, v, int64(math.MaxInt64)))
		return
	}
	if v != 0 || always {
		w.line(key, strconv.FormatUint(v, 10))
	}
}

func (w *writer) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// quote spells s as a TOML basic string: quote, backslash and control
// characters escaped, everything else (UTF-8) as is.
func quote(field, s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("field %s: not valid UTF-8", field)
	}
	var b bytes.Buffer
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String(), nil
}
