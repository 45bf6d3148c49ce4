package daemon

import (
	"strings"
	"testing"
)

// What a cluster survives is said plainly, two-node installs included.
func TestSurvives(t *testing.T) {
	for _, tc := range []struct {
		voters, members int
		want            string
	}{
		{1, 1, "one node"},
		{1, 2, "1 voter: writes stop while it is down (losing a non-voter loses nothing)"},
		{2, 2, "2 voters: writes stop while either is down"},
		{3, 6, "3 voters: writes go on with up to 1 of them down (a quorum is 2)"},
		{5, 6, "5 voters: writes go on with up to 2 of them down (a quorum is 3)"},
	} {
		if got := survives(tc.voters, tc.members); !strings.Contains(got, tc.want) {
			t.Errorf("survives(%d, %d) = %q, want %q", tc.voters, tc.members, got, tc.want)
		}
	}
}
