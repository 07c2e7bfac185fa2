package boards

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/mcinit/mcinit/identity"
)

// Format writes a board in the layout of the shipped files: top-level keys,
// then [[match]], [quirks], [device_tree], [recorded] and [provenance]
// (empty tables left out). Parse(Format(b)) gives back b; the output is a
// pure function of b, so imports are reproducible.
func Format(b *Board) []byte {
	var w strings.Builder
	kv := func(k, v string) { fmt.Fprintf(&w, "%s = %s\n", k, v) }
	kv("name", quote(b.Name))
	kv("arch", quote(b.Arch))
	if b.Generic {
		kv("generic", "true")
	}
	if b.Notes != "" {
		kv("notes", quoteNotes(b.Notes))
	}
	if len(b.Modules) > 0 {
		w.WriteString("\nmodules = [\n")
		for _, m := range b.Modules {
			parts := []string{"name = " + quote(m.Name)}
			if m.Params != "" {
				parts = append(parts, "params = "+quote(m.Params))
			}
			if m.Profile != "" {
				parts = append(parts, "profile = "+quote(m.Profile))
			}
			if m.From != "" {
				parts = append(parts, "from = "+quote(m.From))
			}
			fmt.Fprintf(&w, "  { %s },\n", strings.Join(parts, ", "))
		}
		w.WriteString("]\n")
	}
	list := func(k string, vs []string) {
		if len(vs) == 0 {
			return
		}
		fmt.Fprintf(&w, "%s = [", k)
		for i, v := range vs {
			if i > 0 {
				w.WriteString(", ")
			}
			w.WriteString(quote(v))
		}
		w.WriteString("]\n")
	}
	if len(b.SystemModules)+len(b.Blacklist)+len(b.KernelParams) > 0 {
		w.WriteString("\n")
	}
	list("system_modules", b.SystemModules)
	list("blacklist", b.Blacklist)
	list("kernel_params", b.KernelParams)
	for _, r := range b.Match {
		w.WriteString("\n[[match]]\n")
		if len(r.Compatible) > 0 {
			list("compatible", r.Compatible)
		}
		for _, f := range r.dmiFields(&identity.Identity{}) {
			if f[1] != "" {
				kv(f[0], quote(f[1]))
			}
		}
	}
	q := b.Quirks
	if q.RootWait != 0 || q.Console != "" || len(q.Firmware) > 0 {
		w.WriteString("\n[quirks]\n")
	}
	if q.RootWait != 0 {
		kv("root_wait", strconv.Itoa(q.RootWait))
	}
	if q.Console != "" {
		kv("console", quote(q.Console))
	}
	list("firmware", q.Firmware)
	dt := b.DeviceTree
	if dt.Name != "" || dt.Filter != "" || len(dt.Overlays) > 0 {
		w.WriteString("\n[device_tree]\n")
		if dt.Name != "" {
			kv("name", quote(dt.Name))
		}
		if dt.Filter != "" {
			kv("filter", quote(dt.Filter))
		}
		if len(dt.Overlays) > 0 {
			w.WriteString("overlays = [\n")
			for _, o := range dt.Overlays {
				if o.Filter != "" {
					fmt.Fprintf(&w, "  { name = %s, filter = %s },\n", quote(o.Name), quote(o.Filter))
				} else {
					fmt.Fprintf(&w, "  { name = %s },\n", quote(o.Name))
				}
			}
			w.WriteString("]\n")
		}
	}
	r := b.Recorded
	if r.KernelPackage != "" || len(r.Firmware) > 0 || r.RedistributableFirmware {
		w.WriteString("\n[recorded]\n")
		if r.KernelPackage != "" {
			kv("kernel_package", quote(r.KernelPackage))
		}
		list("firmware", r.Firmware)
		if r.RedistributableFirmware {
			kv("redistributable_firmware", "true")
		}
	}
	if p := b.Provenance; p != (Provenance{}) {
		w.WriteString("\n[provenance]\n")
		kv("source", quote(p.Source))
		if p.Repository != "" {
			kv("repository", quote(p.Repository))
		}
		kv("commit", quote(p.Commit))
		kv("profile", quote(p.Profile))
	}
	return []byte(w.String())
}

// quote writes a TOML basic string. Board strings are printable ASCII
// except notes, whose newlines and tabs are escaped.
func quote(s string) string {
	var w strings.Builder
	w.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			w.WriteByte('\\')
			w.WriteByte(c)
		case c == '\n':
			w.WriteString(`\n`)
		case c == '\t':
			w.WriteString(`\t`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&w, `\u%04X`, c)
		default:
			w.WriteByte(c)
		}
	}
	w.WriteByte('"')
	return w.String()
}

// quoteNotes writes notes with line breaks as a multi-line string, the way
// people write them.
func quoteNotes(s string) string {
	if !strings.Contains(s, "\n") {
		return quote(s)
	}
	var w strings.Builder
	w.WriteString("\"\"\"\n")
	for _, line := range strings.SplitAfter(s, "\n") {
		body := strings.TrimSuffix(line, "\n")
		q := quote(body)
		w.WriteString(q[1 : len(q)-1])
		if len(body) < len(line) {
			w.WriteByte('\n')
		}
	}
	w.WriteString("\"\"\"")
	return w.String()
}
