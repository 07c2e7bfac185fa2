package harness

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// EditDTBCompatible rewrites the root node's compatible list and model of
// the device tree blob in and writes the result to out, using dtc. The
// override is appended as a second definition of "/", which dtc merges over
// the original, so the rest of the tree is untouched.
func EditDTBCompatible(in, out string, compatible []string, model string) error {
	if len(compatible) == 0 {
		return fmt.Errorf("EditDTBCompatible: empty compatible list")
	}
	var quoted []string
	for _, c := range compatible {
		q, err := dtsString(c)
		if err != nil {
			return fmt.Errorf("EditDTBCompatible: compatible %q: %w", c, err)
		}
		quoted = append(quoted, q)
	}
	dts, err := dtc("-I", "dtb", "-O", "dts", in)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	b.Write(dts)
	fmt.Fprintf(&b, "\n/ {\n\tcompatible = %s;\n", strings.Join(quoted, ", "))
	if model != "" {
		q, err := dtsString(model)
		if err != nil {
			return fmt.Errorf("EditDTBCompatible: model %q: %w", model, err)
		}
		fmt.Fprintf(&b, "\tmodel = %s;\n", q)
	}
	b.WriteString("};\n")
	f, err := os.CreateTemp("", "mcinit-dts-*.dts")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b.Bytes()); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	_, err = dtc("-I", "dts", "-O", "dtb", "-o", out, f.Name())
	return err
}

// dtsString quotes s as a DTS string literal; only printable ASCII is
// accepted, which is what compatible strings and models use.
func dtsString(s string) (string, error) {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
		default:
			return "", fmt.Errorf("byte 0x%02x not allowed", c)
		}
	}
	b.WriteByte('"')
	return b.String(), nil
}

func dtc(args ...string) ([]byte, error) {
	cmd := exec.Command("dtc", append([]string{"-q"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("dtc %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
