package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMissingFailsInCI runs this test binary again with a tool that cannot
// exist: under CI=true or MCINIT_E2E=1 the child must fail, otherwise skip.
func TestMissingFailsInCI(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") == "1" {
		RequireTool(t, "mcinit-no-such-tool", "none")
		t.Fatal("RequireTool returned for a missing tool")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env      []string
		wantFail bool
		wantText string
	}{
		{[]string{"CI=true", "MCINIT_E2E="}, true, "in CI a test may not skip"},
		{[]string{"CI=", "MCINIT_E2E=1"}, true, "in CI a test may not skip"},
		{[]string{"CI=", "MCINIT_E2E="}, false, "--- SKIP"},
	} {
		cmd := exec.Command(self, "-test.run", "^TestMissingFailsInCI$", "-test.v")
		cmd.Env = append(os.Environ(), append(tc.env, "TESTENV_CHILD=1")...)
		out, err := cmd.CombinedOutput()
		if (err != nil) != tc.wantFail || !strings.Contains(string(out), tc.wantText) {
			t.Errorf("env %v: err %v, want failure %v with %q:\n%s", tc.env, err, tc.wantFail, tc.wantText, out)
		}
	}
}
