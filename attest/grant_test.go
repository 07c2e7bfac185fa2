package attest

import (
	"strings"
	"testing"

	"github.com/mcinit/mcinit/boot"
	"github.com/mcinit/mcinit/decide"
	"github.com/mcinit/mcinit/measure"
)

// TestVerifyGrant: a development boot a grant unlocked carries the grant
// event after the decision; the verdict names the grant and its source,
// and the prediction from the same facts matches. A grant event without
// a grant decision, a grant decision without one, or one out of place
// fails.
func TestVerifyGrant(t *testing.T) {
	nonce := []byte("nonce-grant")
	sum := strings.Repeat("5e", 32)
	f := bootFor(decide.Development)
	f.Decision.Reason = decide.ReasonDevGrant
	f.Grant = boot.GrantRef{SHA256: sum, Source: measure.GrantInPartition}
	evs := f.Events()
	if len(evs) != 7 || evs[4].Tag != measure.TagGrant || string(evs[4].Data) != "grant-sha256="+sum+"\nsource=partition\n" {
		t.Fatalf("events %v", evs)
	}
	ev, ak, banks := device(t, evs, nonce)
	v, err := Verify(ev, known(), nonce, ak, unanchoredOK)
	if err != nil {
		t.Fatalf("%v\n%+v", err, v.Checks)
	}
	if v.Profile != "development" || v.Reason != "dev-allowed-grant" || v.GrantSHA256 != sum || v.GrantSource != "partition" {
		t.Errorf("verdict %+v", v)
	}
	pr, err := Predict(evs, 13, banks)
	if err != nil {
		t.Fatal(err)
	}
	if string(pr.Log) != string(ev.EventLog) {
		t.Error("predicted log differs from the device's")
	}

	board := bootFor(decide.Development).Events()
	grantEv := evs[4]
	for name, c := range map[string]struct {
		evs   []measure.Event
		check string
	}{
		"grant reason, no grant event": {[]measure.Event{evs[0], evs[1], evs[2], evs[3], evs[5], evs[6]}, "decision"},
		"grant event, board reason":    {[]measure.Event{board[0], board[1], board[2], board[3], grantEv, board[4], board[5]}, "decision"},
		"grant event before decision":  {[]measure.Event{evs[0], evs[1], evs[2], grantEv, evs[3], evs[5], evs[6]}, "event-sequence"},
		"grant event after root":       {[]measure.Event{evs[0], evs[1], evs[2], evs[3], evs[5], grantEv, evs[6]}, "event-sequence"},
		"two grant events":             {[]measure.Event{evs[0], evs[1], evs[2], evs[3], grantEv, grantEv, evs[5], evs[6]}, "event-sequence"},
		"unknown source":               {[]measure.Event{evs[0], evs[1], evs[2], evs[3], measure.GrantEvent(sum, "usb"), evs[5], evs[6]}, "decision"},
		"digest not hex":               {[]measure.Event{evs[0], evs[1], evs[2], evs[3], measure.GrantEvent("SN-1", "partition"), evs[5], evs[6]}, "decision"},
	} {
		ev, ak, _ := device(t, c.evs, nonce)
		v, err := Verify(ev, known(), nonce, ak, unanchoredOK)
		if err == nil || v.OK || !failed(v, c.check) {
			t.Errorf("%s: err %v, check %s failed=%v, checks %+v", name, err, c.check, failed(v, c.check), v.Checks)
		}
	}
}
