package measure

// Order is the tag sequence of a successful boot, the one home of the
// event order: /init's boot.Measurer records in it, boot.Facts builds
// predictions in it and a verifier requires it.
func Order() []Tag {
	return []Tag{TagPolicy, TagKeySet, TagBoard, TagDecision, TagRoot, TagSeparator}
}
