// Package stricttoml decodes mcinit's small signed TOML documents (the
// policy, grants, keyset.toml) strictly: bounded size, valid UTF-8, bounded
// nesting, no negative integers and no keys the target has no field for.
// It is the one decoder both the policy schema and the key set use.
package stricttoml

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// MaxNesting bounds array and inline-table nesting. The decoder's time
// grows steeply with depth (30,000 nested arrays took 90 s), and no mcinit
// document needs more than 3 levels.
const MaxNesting = 8

// maxKeyShown bounds a key name quoted in an error.
const maxKeyShown = 128

// Decode decodes a document of at most limit bytes into v and rejects any
// key that v has no field for. Errors are one line and name the field.
func Decode(data []byte, v any, limit int) (toml.MetaData, error) {
	if len(data) > limit {
		return toml.MetaData{}, fmt.Errorf("document is %d bytes, more than the limit of %d", len(data), limit)
	}
	if !utf8.Valid(data) {
		return toml.MetaData{}, errors.New("document is not valid UTF-8")
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return toml.MetaData{}, errors.New("document contains a NUL byte")
	}
	if err := checkNesting(data); err != nil {
		return toml.MetaData{}, err
	}
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(v)
	if err != nil {
		return md, fmt.Errorf("toml: %s", oneLine(err))
	}
	// The decoder stores a negative TOML integer into a uint64 field by
	// wrapping it around; no field of ours takes a negative number.
	var raw map[string]any
	if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw); err != nil {
		return md, fmt.Errorf("toml: %s", oneLine(err))
	}
	if err := rejectNegative("", raw); err != nil {
		return md, err
	}
	if und := md.Undecoded(); len(und) > 0 {
		const show = 5
		names := make([]string, 0, show+1)
		for _, k := range und {
			n := k.String()
			if len(n) > maxKeyShown {
				n = n[:maxKeyShown] + "..."
			}
			if len(names) > 0 && names[len(names)-1] == n {
				continue
			}
			if len(names) == show {
				names = append(names, "and more")
				break
			}
			names = append(names, n)
		}
		return md, fmt.Errorf("unknown field %s", strings.Join(names, ", "))
	}
	return md, nil
}

// checkNesting scans for '[' and '{' outside strings and comments and
// rejects documents nested deeper than MaxNesting. It need not be a full
// TOML lexer: it only has to never under-count what the decoder will see.
func checkNesting(data []byte) error {
	depth, line, dots := 0, 1, 0
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '\n':
			line++
			dots = 0
		case '.':
			// Dotted keys nest tables too, and cost as much as brackets.
			if dots++; dots > MaxNesting {
				return fmt.Errorf("toml: line %d: key nested more than %d levels deep", line, MaxNesting)
			}
		case '#':
			for i < len(data) && data[i] != '\n' {
				i++
			}
			i--
		case '"', '\'':
			// Skip a string: """...""", '''...''', "..." (with escapes) or '...'.
			q := string(bytes.Repeat([]byte{c}, 3))
			if bytes.HasPrefix(data[i:], []byte(q)) {
				end := bytes.Index(data[i+3:], []byte(q))
				if end < 0 {
					return nil // unterminated: the decoder reports it
				}
				line += bytes.Count(data[i:i+3+end], []byte("\n"))
				i += 3 + end + 2
				continue
			}
			for i++; i < len(data) && data[i] != c && data[i] != '\n'; i++ {
				if c == '"' && data[i] == '\\' {
					i++
				}
			}
		case '[', '{':
			depth++
			if depth > MaxNesting {
				return fmt.Errorf("toml: line %d: nested more than %d levels deep", line, MaxNesting)
			}
		case ']', '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return nil
}

// rejectNegative walks a decoded document for negative integers.
func rejectNegative(field string, v any) error {
	join := func(k string) string {
		if field == "" {
			return k
		}
		return field + "." + k
	}
	switch v := v.(type) {
	case int64:
		if v < 0 {
			return fmt.Errorf("field %s: %d is negative", field, v)
		}
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := rejectNegative(join(k), v[k]); err != nil {
				return err
			}
		}
	case []map[string]any:
		for i, e := range v {
			if err := rejectNegative(fmt.Sprintf("%s[%d]", field, i), e); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range v {
			if err := rejectNegative(fmt.Sprintf("%s[%d]", field, i), e); err != nil {
				return err
			}
		}
	}
	return nil
}

// oneLine shortens a decoder error to one line; BurntSushi's ParseError
// carries a multi-line "usage" hint we do not want on a console.
func oneLine(err error) string {
	s := err.Error()
	var pe toml.ParseError
	if errors.As(err, &pe) {
		s = pe.Error()
	}
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimPrefix(s, "toml: ")
}
