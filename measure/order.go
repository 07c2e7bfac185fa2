package measure

// Order is the tag sequence of a successful boot, the one home of the
// event order: /init's boot.Measurer records in it, boot.Facts builds
// predictions in it and a verifier requires it. A development boot that a
// grant unlocked has the grant event right after the decision (OrderFor).
func Order() []Tag { return OrderFor(false) }

// OrderFor is Order for a boot with (grant) or without a grant event.
func OrderFor(grant bool) []Tag {
	if grant {
		return []Tag{TagPolicy, TagKeySet, TagBoard, TagDecision, TagGrant, TagRoot, TagSeparator}
	}
	return []Tag{TagPolicy, TagKeySet, TagBoard, TagDecision, TagRoot, TagSeparator}
}
