package cmdline

import (
	"reflect"
	"strings"
	"testing"
)

func p(name string) Param         { return Param{Name: name} }
func pv(name, value string) Param { return Param{Name: name, Value: value, HasValue: true} }

// TestParseKernelRules follows lib/cmdline.c next_arg() and parse_args(),
// including their corner cases.
func TestParseKernelRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []Param
		init []string
		sep  bool
	}{
		{"empty", "", nil, nil, false},
		{"spaces only", " \t\n", nil, nil, false},
		{"simple", "ro quiet root=/dev/vda1", []Param{p("ro"), p("quiet"), pv("root", "/dev/vda1")}, nil, false},
		{"proc newline", "console=ttyS0\n", []Param{pv("console", "ttyS0")}, nil, false},
		{"all spaces", "a\tb\nc\vd\fe\rf", []Param{p("a"), p("b"), p("c"), p("d"), p("e"), p("f")}, nil, false},
		{"nbsp is space", "a\xa0b", []Param{p("a"), p("b")}, nil, false},
		{"quoted value", `foo="bar baz" x`, []Param{pv("foo", "bar baz"), p("x")}, nil, false},
		{"quoted whole", `"foo=bar baz" x`, []Param{pv("foo", "bar baz"), p("x")}, nil, false},
		{"quoted word", `"a b" c`, []Param{p("a b"), p("c")}, nil, false},
		{"value quote then text", `foo="bar"baz`, []Param{pv("foo", `bar"baz`)}, nil, false},
		{"quote inside value", `foo=bar"baz qux" n`, []Param{pv("foo", `bar"baz qux"`), p("n")}, nil, false},
		{"unterminated quote", `a "b c`, []Param{p("a"), p("b c")}, nil, false},
		{"lone quote", `"`, []Param{p("")}, nil, false},
		{"empty quoted value", `a="`, []Param{pv("a", "")}, nil, false},
		{"equals at 0", "=foo", []Param{p("=foo")}, nil, false},
		{"empty value", "a=", []Param{pv("a", "")}, nil, false},
		{"double equals", "a==b", []Param{pv("a", "=b")}, nil, false},
		{"dashes end", "ro -- single x=1", []Param{p("ro")}, []string{"single", "x=1"}, true},
		{"dashes at end", "ro --", []Param{p("ro")}, nil, true},
		{"quoted dashes", `ro "--" s`, []Param{p("ro")}, []string{"s"}, true},
		{"dashes with value", "--=x ro", []Param{pv("--", "x"), p("ro")}, nil, false},
		{"init quoted", `-- a="b c"`, nil, []string{"a=b c"}, true},
		{"second dashes is init's", "-- a -- b", nil, []string{"a", "--", "b"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Params, tc.want) || !reflect.DeepEqual(c.InitArgs, tc.init) || c.Separator != tc.sep {
				t.Errorf("Parse(%q) = %+v %q %v, want %+v %q %v", tc.in, c.Params, c.InitArgs, c.Separator, tc.want, tc.init, tc.sep)
			}
		})
	}
}

func TestParseBounds(t *testing.T) {
	if _, err := Parse("a\x00b"); err == nil || !strings.Contains(err.Error(), "NUL byte at offset 1") {
		t.Errorf("NUL: %v", err)
	}
	if _, err := Parse(strings.Repeat("a ", MaxSize/2+1)); err == nil {
		t.Error("oversized command line accepted")
	}
	if _, err := Parse(strings.Repeat("a ", MaxSize/2)); err != nil {
		t.Errorf("MaxSize rejected: %v", err)
	}
}

func TestNameEqual(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"mcinit.profile", "mcinit.profile", true},
		{"a-b_c", "a_b-c", true},
		{"mcinit.profile", "mcinit-profile", false},
		{"ab", "abc", false},
	} {
		if NameEqual(tc.a, tc.b) != tc.want {
			t.Errorf("NameEqual(%q, %q) != %v", tc.a, tc.b, tc.want)
		}
	}
	c, _ := Parse("log_level=1 log-level=2")
	if got := c.Lookup("log-level"); len(got) != 2 {
		t.Errorf("Lookup: %v", got)
	}
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		in           string
		profile      string
		debug, shell bool
		warnings     int
	}{
		{"", ProfileNone, false, false, 0},
		{"quiet", ProfileNone, false, false, 0},
		{"mcinit.profile=production", ProfileProduction, false, false, 0},
		{"mcinit.profile=development", ProfileDevelopment, false, false, 0},
		{`mcinit.profile="development"`, ProfileDevelopment, false, false, 0},
		{`"mcinit.profile=development"`, ProfileDevelopment, false, false, 0},
		{"mcinit.profile=development mcinit.profile=development", ProfileDevelopment, false, false, 0},
		{"mcinit.profile=production mcinit.profile=development", ProfileMalformed, false, false, 1},
		{"mcinit.profile=development mcinit.profile=production", ProfileMalformed, false, false, 1},
		{"mcinit.profile=development mcinit.profile=dev", ProfileMalformed, false, false, 1},
		{"mcinit.profile", ProfileMalformed, false, false, 1},
		{"mcinit.profile=", ProfileMalformed, false, false, 1},
		{"mcinit.profile=Development", ProfileMalformed, false, false, 1},
		{`mcinit.profile="development "`, ProfileMalformed, false, false, 1},
		{"mcinit.profile=development -- mcinit.profile=production", ProfileDevelopment, false, false, 0},
		{"-- mcinit.profile=development mcinit.shell", ProfileNone, false, false, 0},
		{"MCINIT.profile=development", ProfileNone, false, false, 0},
		{"mcinit.debug", ProfileNone, true, false, 0},
		{"mcinit.debug=1 mcinit.shell=yes", ProfileNone, true, true, 0},
		{"mcinit.debug=0", ProfileNone, false, false, 0},
		{"mcinit.debug=maybe", ProfileNone, false, false, 1},
		{"mcinit.debug mcinit.debug=off", ProfileNone, false, false, 1},
		{"mcinit.debug=on mcinit.debug", ProfileNone, true, false, 0},
		{"mcinit.profle=development", ProfileNone, false, false, 1},
		{"mcinit.shell mcinit.profile=development", ProfileDevelopment, false, true, 0},
	} {
		c, err := Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		f := c.Flags()
		if f.Profile != tc.profile || f.Debug != tc.debug || f.Shell != tc.shell || len(f.Warnings) != tc.warnings {
			t.Errorf("Flags(%q) = %+v, want profile %q debug %v shell %v and %d warnings", tc.in, f, tc.profile, tc.debug, tc.shell, tc.warnings)
		}
		for _, w := range f.Warnings {
			if strings.ContainsAny(w, "\n\r") || len(w) > 200 {
				t.Errorf("warning not one bounded line: %q", w)
			}
		}
	}
}
