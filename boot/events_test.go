package boot

import (
	"testing"

	"github.com/mcinit/mcinit/measure"
)

// TestDecisionFromEvent: the lookup accepts exactly AllDecisionEvents' data
// and nothing close to it.
func TestDecisionFromEvent(t *testing.T) {
	all := AllDecisionEvents()
	for data, want := range all {
		got, ok := DecisionFromEvent([]byte(data))
		if !ok || got != want {
			t.Errorf("%q: got %+v %v, want %+v", data, got, ok, want)
		}
	}
	for _, bad := range []string{
		"",
		"request=none\nprofile=production\nreason=default",            // no final newline
		"request=none\nprofile=production\nreason=default\n\n",        // extra line
		"request=none\nprofile=development\nreason=default\n",         // not a possible combination
		"profile=production\nrequest=none\nreason=default\n",          // order
		"request=none\nprofile=production\nreason=default\nx=y\n",     // extra field
		"request=n%6Fne\nprofile=production\nreason=default\n",        // not canonical
		string(measure.DecisionEvent("none", "production", "x").Data), // unknown reason
	} {
		if f, ok := DecisionFromEvent([]byte(bad)); ok {
			t.Errorf("%q accepted as %+v", bad, f)
		}
	}
	if _, ok := all["request=none\nprofile=production\nreason=default\n"]; !ok {
		t.Fatal("the production default is not in AllDecisionEvents: the negative cases above test nothing")
	}
}
