package policy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mcinit/mcinit/internal/stricttoml"
)

// TestDocsExamples: the policy and grant examples in docs/ use the
// format's field names. The docs write them by hand (fragments, elided
// hashes), so they are decoded strictly, not validated; full grants are
// parsed.
func TestDocsExamples(t *testing.T) {
	block := regexp.MustCompile("(?s)```toml\n(.*?)```")
	n := 0
	for _, doc := range []string{"policy.md", "production.md", "development.md"} {
		md, err := os.ReadFile(filepath.Join("..", "docs", doc))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range block.FindAllSubmatch(md, -1) {
			text := m[1]
			n++
			if strings.Contains(string(text), "max_policy_version") {
				if _, err := ParseGrant(text); err != nil {
					t.Errorf("%s: grant example: %v\n%s", doc, err, text)
				}
				continue
			}
			var p Policy
			if _, err := stricttoml.Decode(text, &p, MaxPolicySize); err != nil {
				t.Errorf("%s: policy example: %v\n%s", doc, err, text)
			}
		}
	}
	if n < 3 {
		t.Errorf("found %d TOML examples in docs/, want the policy, production and development ones", n)
	}
}
