package grantpart

import (
	"bytes"
	"testing"
)

// FuzzParse: no panic, everything accepted respects the limits, and an
// accepted container builds back to exactly its own bytes (one spelling
// per list of grants, so a verifier of the bytes sees what /init saw).
func FuzzParse(f *testing.F) {
	if b, err := Build(sample()); err == nil {
		f.Add(b)
	}
	f.Add(make([]byte, 32))
	f.Fuzz(func(t *testing.T, data []byte) {
		es, err := Parse(data)
		if err != nil {
			return
		}
		if len(es) > MaxEntries {
			t.Fatalf("%d entries", len(es))
		}
		for _, e := range es {
			if checkEntry(e) != nil {
				t.Fatalf("accepted bad entry %q", e.Name)
			}
		}
		b, err := Build(es)
		if err != nil {
			t.Fatalf("accepted container does not rebuild: %v", err)
		}
		if !bytes.Equal(b, data[:len(b)]) {
			t.Fatalf("accepted a non-canonical container")
		}
	})
}
