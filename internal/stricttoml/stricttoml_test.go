package stricttoml

import (
	"strings"
	"testing"
)

type doc struct {
	A uint64 `toml:"a"`
	T struct {
		B []int `toml:"b"`
	} `toml:"t"`
}

func TestDecode(t *testing.T) {
	var d doc
	if _, err := Decode([]byte("a = 1\n[t]\nb = [1, 2]\n"), &d, 100); err != nil || d.A != 1 || len(d.T.B) != 2 {
		t.Fatalf("%+v %v", d, err)
	}
	for _, tc := range []struct{ in, want string }{
		{"a = \"\xff\"\n", "not valid UTF-8"},
		{"a = 1\x00\n", "NUL byte"},
		{"a = -1\n", "field a: -1 is negative"},
		{"[t]\nb = [1, -2]\n", "field t.b[1]: -2 is negative"},
		{"a = 1\nc = 2\n", "unknown field c"},
		{"a = 1\na = 2\n", "toml:"},
		{"a = 1\n[t]\nb = " + strings.Repeat("[", 9) + strings.Repeat("]", 9) + "\n", "nested more than 8 levels deep"},
		{strings.Repeat("x.", 9) + "y = 1\n", "key nested more than 8 levels deep"},
	} {
		var d doc
		if _, err := Decode([]byte(tc.in), &d, 64); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.in, err, tc.want)
		}
	}
	if _, err := Decode([]byte("a = 1\n"), &d, 3); err == nil || !strings.Contains(err.Error(), "6 bytes, more than the limit of 3") {
		t.Errorf("over the limit: %v", err)
	}
	// Brackets, dots and quotes inside strings and comments do not count.
	var s struct {
		S string `toml:"s"`
	}
	in := "s = \"[[[[[[[[[[.........\\\"[[\" # {{{{{{{{{{{{\n"
	if _, err := Decode([]byte(in), &s, 200); err != nil || !strings.HasPrefix(s.S, "[[[[") {
		t.Errorf("%q: %v", in, err)
	}
}

// FuzzDecode: no panic, and the bounds hold for whatever is accepted.
func FuzzDecode(f *testing.F) {
	f.Add([]byte("a = 1\n[t]\nb = [1, 2]\n"))
	f.Add([]byte("a = 1\n# [[[[\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var d doc
		if _, err := Decode(data, &d, 4096); err != nil {
			return
		}
		if len(data) > 4096 {
			t.Fatalf("accepted %d bytes over the limit", len(data))
		}
		for _, b := range d.T.B {
			if b < 0 {
				t.Fatalf("accepted negative %d", b)
			}
		}
	})
}
