package measure

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/identity"
)

// longIdentity is a DMI identity whose strings are long enough (each at
// identity.MaxField) that the serial and UUID, which come last, sit far
// beyond 512 bytes (issue 11 item 3).
func longIdentity(serial, uuid string) string {
	long := strings.Repeat("V", identity.MaxField)
	return identity.Identity{
		Source: identity.SourceDMI, Arch: "amd64",
		SysVendor: long, ProductName: long, ProductVersion: long, ProductFamily: long,
		Serial: serial, SystemUUID: uuid,
	}.String()
}

// TestBoardEventWholeIdentity: two devices that differ only in the tail of
// their identity (the UUID, or a byte deep inside a long serial) give
// different board events, whatever the identity's length.
func TestBoardEventWholeIdentity(t *testing.T) {
	for _, tc := range []struct{ name, a, b string }{
		{"uuid", longIdentity("SN-1", "00000000-0000-0000-0000-000000000001"), longIdentity("SN-1", "00000000-0000-0000-0000-000000000002")},
		{"serial", longIdentity("SN-1", ""), longIdentity("SN-2", "")},
		{"short", "source=dmi serial=\"1\"", "source=dmi serial=\"2\""},
		{"huge", strings.Repeat("x", 3000) + "1", strings.Repeat("x", 3000) + "2"},
	} {
		ea, eb := BoardEvent("qemu-x86_64", tc.a), BoardEvent("qemu-x86_64", tc.b)
		if bytes.Equal(ea.Data, eb.Data) {
			t.Errorf("%s: identities %d bytes long that differ at the end give the same board event", tc.name, len(tc.a))
		}
	}
}

// TestBoardFields: the decoder gets back exactly what BoardEvent wrote, in
// both forms, and refuses what BoardEvent never writes.
func TestBoardFields(t *testing.T) {
	for _, id := range []string{"source=dmi serial=\"1\"", longIdentity("SN", "U"), strings.Repeat("%", MaxIdentity/3), strings.Repeat("%", MaxIdentity/3+1)} {
		sum := sha256.Sum256([]byte(id))
		ev := BoardEvent("b", id)
		if len(ev.Data) > MaxEventData {
			t.Fatalf("board event of %d bytes is over MaxEventData", len(ev.Data))
		}
		board, got, gotSum, err := BoardFields(ev.Data)
		if err != nil {
			t.Fatalf("%d-byte identity: %v", len(id), err)
		}
		verbatim := len(escape(id)) <= MaxIdentity
		if board != "b" || gotSum != hex.EncodeToString(sum[:]) || (verbatim && got != id) || (!verbatim && got != "") {
			t.Errorf("%d-byte identity (verbatim %v): got %q %q %q", len(id), verbatim, board, got, gotSum)
		}
	}
	for _, bad := range []string{
		"board=b\n",
		"board=b\nidentity-sha256=ABCD\n",
		"board=b\nidentity-sha256=" + strings.Repeat("0", 63) + "\n",
		"board=b\nidentity=" + strings.Repeat("y", MaxIdentity+1) + "\n",
		"board=b\nserial=1\n",
	} {
		if _, _, _, err := BoardFields([]byte(bad)); err == nil {
			t.Errorf("BoardFields(%q) accepted", bad)
		}
	}
}

// TestFailureCauseBounded: the free-text failure cause is the one value
// that is cut, so a long cause cannot inflate the log.
func TestFailureCauseBounded(t *testing.T) {
	if n := len(FailureEvent(strings.Repeat("c", 10000)).Data); n > maxCause+16 {
		t.Errorf("failure event is %d bytes", n)
	}
}

// TestBoardEventSource: an imported board's event carries its provenance
// after the identity; a hand-written board's event is unchanged.
func TestBoardEventSource(t *testing.T) {
	src := BoardSource{Commit: "0471accf8d0a8210b31d947497d179ecc99e0021", Profile: "pine64/pinebook-pro"}
	id := `source=dt arch=arm64 compatible=["pine64,pinebook-pro"] model="Pine64 Pinebook Pro" serial=""`
	plain, from := BoardEvent("pine64-pinebook-pro", id), BoardEventFrom("pine64-pinebook-pro", id, src)
	if !bytes.Equal(plain.Data, BoardEventFrom("pine64-pinebook-pro", id, BoardSource{}).Data) {
		t.Error("zero source changed the event")
	}
	if bytes.Equal(plain.Data, from.Data) || !bytes.Contains(from.Data, []byte("nixos-hardware-commit")) {
		t.Errorf("provenance not measured: %q", from.Data)
	}
	if other := BoardEventFrom("pine64-pinebook-pro", id, BoardSource{Commit: src.Commit, Profile: "pine64/pinebook"}); bytes.Equal(other.Data, from.Data) {
		t.Error("another profile gives the same event")
	}
	for _, ev := range []Event{plain, from} {
		board, gotID, _, err := BoardFields(ev.Data)
		if err != nil || board != "pine64-pinebook-pro" || gotID != id {
			t.Errorf("BoardFields(%q) = %q, %q, %v", ev.Data, board, gotID, err)
		}
	}
	if got, err := BoardEventSource(from.Data); got != src || err != nil {
		t.Errorf("BoardEventSource = %+v, %v", got, err)
	}
	if got, err := BoardEventSource(plain.Data); got != (BoardSource{}) || err != nil {
		t.Errorf("hand-written BoardEventSource = %+v, %v", got, err)
	}
	bad := BoardEventFrom("b", "x", BoardSource{Commit: "xyz", Profile: "a/b"})
	if _, _, _, err := BoardFields(bad.Data); err == nil {
		t.Error("malformed commit accepted")
	}
}
