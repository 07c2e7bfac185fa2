package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/mcinit/mcinit/signing"
)

const sampleGrant = `format = 1
board = "qemu-x86_64"
device_id = "SN-0042"
min_policy_version = 3
max_policy_version = 9
`

func TestParseGrant(t *testing.T) {
	g, err := ParseGrant([]byte(sampleGrant))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		board, dev string
		ver        uint64
		want       bool
	}{
		{"qemu-x86_64", "SN-0042", 3, true},
		{"qemu-x86_64", "SN-0042", 9, true},
		{"qemu-x86_64", "SN-0042", 2, false},
		{"qemu-x86_64", "SN-0042", 10, false},
		{"qemu-x86_64", "SN-0043", 5, false},
		{"qemu-aarch64-virt", "SN-0042", 5, false},
		{"qemu-x86_64", "", 5, false},
	} {
		if got := g.Matches(tc.board, tc.dev, tc.ver); got != tc.want {
			t.Errorf("Matches(%q, %q, %d) = %v", tc.board, tc.dev, tc.ver, got)
		}
	}
	// A grant must end: without max_policy_version it stayed valid for
	// every future policy (issue 11 item 9).
	if _, err := ParseGrant([]byte("format = 1\nboard = \"b\"\ndevice_id = \"x\"\n")); err == nil || !strings.Contains(err.Error(), "field max_policy_version: missing") {
		t.Errorf("unbounded grant: %v", err)
	}

	for _, tc := range []struct{ doc, want string }{
		{"board = \"b\"\ndevice_id = \"x\"\n", "field format: missing"},
		{"format = 2\nboard = \"b\"\ndevice_id = \"x\"\n", "field format"},
		{"format = 1\ndevice_id = \"x\"\n", "field board"},
		{"format = 1\nboard = \"b\"\n", "field device_id: empty"},
		{"format = 1\nboard = \"b\"\ndevice_id = \" x\"\n", "field device_id: leading"},
		{"format = 1\nboard = \"b\"\ndevice_id = \"x\"\nmin_policy_version = 5\nmax_policy_version = 4\n", "field max_policy_version"},
		{"format = 1\nboard = \"b\"\ndevice_id = \"x\"\nmin_policy_version = -5\nmax_policy_version = 1\n", "field min_policy_version: -5 is negative"},
		{"format = 1\nboard = \"b\"\ndevice_id = \"x\"\nmax_policy_version = 1\nnot_after = \"2027-01-31\"\n", "field not_after"},
		{"format = 1\nboard = \"b\"\ndevice_id = \"x\"\nmax_policy_version = 1\nnot_after = \"2027-01-31T00:00:00\"\n", "field not_after"},
		{"format = 1\nboard = \"b\"\ndevice_id = \"x\"\nmax_policy_version = 1\nnot_after = 2027-01-31T00:00:00Z\n", "not_after"},
		{"format = 1\nboard = \"b\"\ndevice_id = \"x\"\nmax_policy_version = 1\nexpires = 1\n", "unknown field expires"},
		{minimal, "unknown field"}, // a policy is not a grant
	} {
		if _, err := ParseGrant([]byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.doc, err, tc.want)
		}
	}
	// ... and a grant is not a policy.
	if _, err := Parse([]byte(sampleGrant)); err == nil {
		t.Error("a grant parsed as a policy")
	}
}

func TestVerifyGrant(t *testing.T) {
	a, ka := testSigner(t, signing.AlgEd25519)
	b, kb := testSigner(t, signing.AlgECDSAP256)
	ks := mustKeySet(t, 2, ka, kb)
	doc := []byte(sampleGrant)
	g, err := VerifyGrant(doc, signAll(t, doc, a, b), ks)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.SignedBy) != 2 {
		t.Errorf("SignedBy %v", g.SignedBy)
	}
	if _, err := VerifyGrant(doc, signAll(t, doc, a), ks); err == nil || !strings.Contains(err.Error(), "only 1 of 2") {
		t.Errorf("threshold: %v", err)
	}
	if _, err := ParseGrant(doc); err != nil {
		t.Fatal(err)
	}

	// Another grant's signatures do not carry over.
	other := []byte(strings.Replace(sampleGrant, "SN-0042", "SN-0043", 1))
	if _, err := VerifyGrant(other, signAll(t, doc, a, b), ks); err == nil || !strings.Contains(err.Error(), "grant signature: bad signature") {
		t.Errorf("another grant's signatures: %v", err)
	}
}

// TestGrantNotAfter: not_after voids a grant once the clock is past it, and
// when the clock was never set; it never makes a grant valid.
func TestGrantNotAfter(t *testing.T) {
	g, err := ParseGrant([]byte(sampleGrant + "not_after = \"2027-01-31T00:00:00+01:00\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for _, tc := range []struct {
		now  time.Time
		want bool
	}{
		{at("2026-12-05T08:00:00Z"), true},
		{at("2027-01-30T23:00:00Z"), true}, // == not_after
		{at("2027-01-30T23:00:01Z"), false},
		{at("2030-01-01T00:00:00Z"), false},
		{time.Time{}, false},                // no clock
		{at("1970-01-01T00:00:05Z"), false}, // an RTC that was never set
	} {
		if got := g.ValidAt(tc.now); got != tc.want {
			t.Errorf("ValidAt(%v) = %v, want %v", tc.now, got, tc.want)
		}
	}
	plain, _ := ParseGrant([]byte(sampleGrant))
	if !plain.ValidAt(time.Time{}) || !plain.ValidAt(at("2099-01-01T00:00:00Z")) {
		t.Error("a grant without not_after depends on the clock")
	}
	if !strings.Contains(g.String(), "not_after=2027-01-31T00:00:00+01:00") {
		t.Errorf("String: %s", g)
	}
}
