package measure

import (
	"strings"
	"testing"
)

func TestGrantEvent(t *testing.T) {
	sum := strings.Repeat("0f", 32)
	ev := GrantEvent(sum, GrantInPartition)
	if ev.Tag != TagGrant || string(ev.Data) != "grant-sha256="+sum+"\nsource=partition\n" {
		t.Fatalf("event %v %q", ev.Tag, ev.Data)
	}
	got, src, err := GrantFields(ev.Data)
	if err != nil || got != sum || src != GrantInPartition {
		t.Fatalf("GrantFields: %q %q %v", got, src, err)
	}
	for _, bad := range []string{
		"grant-sha256=" + sum + "\n",
		"grant-sha256=" + strings.ToUpper(sum) + "\nsource=partition\n",
		"grant-sha256=" + sum + "\nsource=esp\n",
		"source=partition\ngrant-sha256=" + sum + "\n",
		"grant-sha256=" + sum + "\nsource=partition\nextra=1\n",
	} {
		if _, _, err := GrantFields([]byte(bad)); err == nil {
			t.Errorf("GrantFields(%q) accepted", bad)
		}
	}
	if o := OrderFor(true); len(o) != len(Order())+1 || o[4] != TagGrant || o[3] != TagDecision {
		t.Errorf("OrderFor(true) = %v", o)
	}
}
