package daemon

import (
	"fmt"
	"testing"
)

func TestParseKeysCursor(t *testing.T) {
	for _, tc := range []struct {
		in    string
		i     int
		inner string
		ok    bool
	}{
		{"", 0, "", true},
		{"0:", 0, "", true},
		{"1:abc:def", 1, "abc:def", true},
		{"2:x", 0, "", false}, // only 2 nodes
		{"-1:x", 0, "", false},
		{"+1:x", 0, "", false},
		{"x:1", 0, "", false},
		{"1", 0, "", false},
	} {
		i, inner, err := parseKeysCursor(tc.in, 2)
		if (err == nil) != tc.ok || i != tc.i || inner != tc.inner {
			t.Errorf("parseKeysCursor(%q) = %d, %q, %v", tc.in, i, inner, err)
		}
	}
}

func FuzzParseKeysCursor(f *testing.F) {
	for _, s := range []string{"", "0:", "1:abc", "9:", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		i, inner, err := parseKeysCursor(s, 3)
		if err != nil {
			return
		}
		if i < 0 || i >= 3 {
			t.Fatalf("%q: node %d of 3", s, i)
		}
		if s != "" && fmt.Sprintf("%d:%s", i, inner) != s && s[0] != '0' {
			t.Fatalf("%q does not round-trip: %d %q", s, i, inner)
		}
	})
}
