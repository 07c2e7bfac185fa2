package measure

import "github.com/mcinit/mcinit/decide"

// Boot is everything a successful boot measures, in the order /init
// measures it. /init records the events one by one as its stages run;
// the predictor builds the same list from Boot.Events.
type Boot struct {
	PolicyRaw []byte   // the signed policy file, exactly as shipped
	KeyIDs    []string // trusted key IDs (hex SHA-256 of PKIX DER)
	Threshold int      // signatures required
	Board     string   // matched board name
	Identity  string   // the identity's canonical string
	// BoardSource is the board's provenance (zero for a hand-written board).
	BoardSource BoardSource
	Request     decide.Request
	Profile     decide.Profile
	Reason      decide.Reason
	Root        Root
}

// Events returns the events of a successful boot: policy, key set, board,
// decision, root, separator.
func (b Boot) Events() []Event {
	return []Event{
		PolicyEvent(b.PolicyRaw),
		KeySetEvent(b.KeyIDs, b.Threshold),
		BoardEventFrom(b.Board, b.Identity, b.BoardSource),
		DecisionEvent(b.Request, b.Profile, b.Reason),
		RootEvent(b.Root),
		SeparatorEvent(),
	}
}

// Order is the tag sequence of a successful boot; a verifier requires it.
func Order() []Tag {
	return []Tag{TagPolicy, TagKeySet, TagBoard, TagDecision, TagRoot, TagSeparator}
}
