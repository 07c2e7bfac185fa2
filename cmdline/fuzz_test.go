package cmdline

import (
	"strings"
	"testing"
)

// FuzzParse: no panic; every parameter consumes input, so the output is
// bounded by the input; the flags are always from their closed set.
func FuzzParse(f *testing.F) {
	f.Add(`ro quiet mcinit.profile="development" -- single`)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(s)
		if err != nil {
			return
		}
		total := 0
		for _, p := range c.Params {
			total += len(p.Name) + len(p.Value)
		}
		for _, a := range c.InitArgs {
			total += len(a) - 1 // may include the '=' put back
		}
		if len(c.Params)+len(c.InitArgs) > len(s) || total > len(s) {
			t.Fatalf("output larger than input %q: %+v", s, c)
		}
		fl := c.Flags()
		switch fl.Profile {
		case ProfileNone, ProfileProduction, ProfileDevelopment, ProfileMalformed:
		default:
			t.Fatalf("profile %q", fl.Profile)
		}
		for _, w := range fl.Warnings {
			if strings.ContainsAny(w, "\n\r\x00") {
				t.Fatalf("warning is not one line: %q", w)
			}
		}
	})
}
