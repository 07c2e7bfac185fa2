package boot

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/mcinit/mcinit/boards"
	"github.com/mcinit/mcinit/decide"
	"github.com/mcinit/mcinit/identity"
	"github.com/mcinit/mcinit/measure"
	"github.com/mcinit/mcinit/signing"
)

// Facts are what a successful boot measures. /init gathers them one by
// one as its stages run; `mcinit predict` is given them. Both turn them
// into events through the functions below, in measure.Order.
type Facts struct {
	PolicyRaw []byte   // the signed policy file, exactly as shipped
	KeyIDs    []string // the trusted key IDs (KeyIDs)
	Threshold int      // signatures required
	Board     string   // matched board name
	// BoardSource is the board's provenance (zero for a hand-written board).
	BoardSource measure.BoardSource
	Identity    identity.Identity
	Decision    decide.Facts
	// Grant is the grant that unlocked development; measured only when
	// the decision's reason is dev-allowed-grant.
	Grant GrantRef
	Root  measure.Root
}

// Events returns the events of a successful boot, in measure.OrderFor.
func (f Facts) Events() []measure.Event {
	evs := []measure.Event{
		measure.PolicyEvent(f.PolicyRaw),
		measure.KeySetEvent(f.KeyIDs, f.Threshold),
		boardEvent(f.Board, f.BoardSource, f.Identity),
		DecisionEvent(f.Decision),
	}
	if f.Decision.Reason == decide.ReasonDevGrant {
		evs = append(evs, GrantEvent(f.Grant))
	}
	return append(evs, measure.RootEvent(f.Root), measure.SeparatorEvent())
}

// KeyIDs lists a key set's IDs and threshold as measured; a missing key
// set measures as no keys and threshold 0.
func KeyIDs(ks *signing.KeySet) (ids []string, threshold int) {
	if ks == nil {
		return nil, 0
	}
	for _, k := range ks.Keys() {
		ids = append(ids, k.ID)
	}
	return ids, ks.Threshold
}

func boardEvent(board string, src measure.BoardSource, id identity.Identity) measure.Event {
	return measure.BoardEventFrom(board, id.String(), src)
}

// BoardSource is the provenance a board's event measures.
func BoardSource(bd *boards.Board) measure.BoardSource {
	if !bd.Provenance.Imported() {
		return measure.BoardSource{}
	}
	return measure.BoardSource{Commit: bd.Provenance.Commit, Profile: bd.Provenance.Profile}
}

// DecisionEvent measures a decision's closed-set facts.
func DecisionEvent(f decide.Facts) measure.Event {
	return measure.DecisionEvent(string(f.Request), string(f.Profile), string(f.Reason))
}

// AllDecisionEvents maps the data of every decision event /init can
// produce (one per decide.PossibleFacts) to its facts. A verifier accepts
// a decision only when its data equals one of these byte for byte.
func AllDecisionEvents() map[string]decide.Facts {
	facts := decide.PossibleFacts()
	m := make(map[string]decide.Facts, len(facts))
	for _, f := range facts {
		m[string(DecisionEvent(f).Data)] = f
	}
	return m
}

// DecisionFromEvent returns the facts of a decision event's data when it
// is byte for byte one that /init can produce (AllDecisionEvents), without
// building the whole table: verifiers look one up per verification.
func DecisionFromEvent(data []byte) (decide.Facts, bool) {
	fs, err := measure.Fields(data)
	if err != nil || len(fs) != 3 || fs[0][0] != "request" || fs[1][0] != "profile" || fs[2][0] != "reason" {
		return decide.Facts{}, false
	}
	for _, f := range decide.PossibleFacts() {
		if string(f.Request) == fs[0][1] && string(f.Profile) == fs[1][1] && string(f.Reason) == fs[2][1] {
			return f, bytes.Equal(DecisionEvent(f).Data, data)
		}
	}
	return decide.Facts{}, false
}

// Measurer records /init's events in measure.Order. Its rule for TPM
// failures: before anything reached the TPM, a failure refuses only when
// the policy requires a TPM (or is not verified yet); once an event has
// been extended, every later failure refuses, whatever the policy says,
// so the PCR is never left with a prefix the booted system could complete.
type Measurer struct {
	rec      *measure.Recorder
	tpm      bool // rec extends into a TPM
	required bool
	extended bool // an event reached the TPM
	next     int  // index in measure.OrderFor(grant) of the next event
	grant    bool // a grant event was recorded
	con      *Console
}

// Record extends ev. It returns a refusal cause when the boot must stop.
func (m *Measurer) Record(ev measure.Event) error {
	order := measure.OrderFor(m.grant || ev.Tag == measure.TagGrant)
	if m.next >= len(order) || ev.Tag != order[m.next] {
		// A programming error: never measure out of order.
		return fmt.Errorf("measuring %s out of order", ev.Tag)
	}
	m.next++
	m.grant = m.grant || ev.Tag == measure.TagGrant
	if err := m.rec.Record(ev); err != nil {
		if m.required || m.extended {
			return fmt.Errorf("measuring %s: %v", ev.Tag, err)
		}
		m.con.Warn("measuring %s: %v", ev.Tag, err)
		return nil
	}
	m.extended = m.extended || m.tpm
	return nil
}

// Fail measures a failure cause, when measuring still works; the error
// says why it could not.
func (m *Measurer) Fail(cause string) error {
	if m == nil {
		return errors.New("no measurements yet")
	}
	return m.rec.Record(measure.FailureEvent(cause))
}

// Log returns the event log so far.
func (m *Measurer) Log() []byte { return m.rec.Log() }

// Commands is the number of TPM commands the recorder sent.
func (m *Measurer) Commands() int { return m.rec.Commands() }
