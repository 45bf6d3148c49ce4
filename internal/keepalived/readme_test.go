package keepalived

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeExplainsEveryWarning: every keyword the import reports as not
// converted is in the README's table of what lbd does instead, so no
// warning is left unexplained.
func TestReadmeExplainsEveryWarning(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, m := range []map[string]string{vsReasons, vrrpReasons, topLevelReasons, unsupportedChecker} {
		for k := range m {
			if !strings.Contains(readme, "`"+k+"`") {
				t.Errorf("the import reports %s as not converted, and the README does not explain it", k)
			}
		}
	}
}
