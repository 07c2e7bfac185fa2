package main

import "testing"

func TestIdentityField(t *testing.T) {
	id := `source=dmi arch=amd64 sys_vendor="QEMU" product_name="a \"b\" c" serial="MCDEV-0001" uuid="1234"`
	for key, want := range map[string]string{
		"serial":       "MCDEV-0001",
		"uuid":         "1234",
		"product_name": `a "b" c`,
		"model":        "",
	} {
		if got := identityField(id, key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if got := identityField(`source=dt serial="unterminated`, "serial"); got != "" {
		t.Errorf("unterminated value gave %q", got)
	}
}
