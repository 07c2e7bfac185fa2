package grantpart

import (
	"testing"

	"github.com/mcinit/mcinit/policy"
)

// TestLimitsMatchPolicy: the container neither holds a grant the policy
// package refuses for size nor cuts one it accepts.
func TestLimitsMatchPolicy(t *testing.T) {
	if MaxGrant != policy.MaxGrantSize {
		t.Errorf("MaxGrant %d, policy.MaxGrantSize %d", MaxGrant, policy.MaxGrantSize)
	}
}
