package boards

import (
	"strings"
	"testing"
)

// TestBoundedPatterns: the patterns with their length limit checked apart
// accept and refuse what the counted repetitions did.
func TestBoundedPatterns(t *testing.T) {
	for _, c := range []struct {
		m    interface{ MatchString(string) bool }
		s    string
		want bool
	}{
		{nameRE, "a" + strings.Repeat("b", 63), true},
		{nameRE, "a" + strings.Repeat("b", 64), false},
		{nameRE, "", false},
		{nameRE, "-a", false},
		{consoleRE, strings.Repeat("t", 64), true},
		{consoleRE, strings.Repeat("t", 65), false},
		{consoleRE, "", false},
		{paramRE, strings.Repeat("p", 256), true},
		{paramRE, strings.Repeat("p", 257), false},
		{paramRE, "a b", false},
		{globRE, strings.Repeat("*", 256), true},
		{globRE, strings.Repeat("*", 257), false},
		{attrRE, "pkgs.linux_6_1", true},
		{attrRE, strings.Repeat("a", 257), false},
		{attrRE, "", false},
	} {
		if got := c.m.MatchString(c.s); got != c.want {
			t.Errorf("%v on %d bytes %.20q: %v, want %v", c.m, len(c.s), c.s, got, c.want)
		}
	}
}
