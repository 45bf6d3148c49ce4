package daemon

import (
	"errors"
	"testing"
)

func TestTTLCache(t *testing.T) {
	var c ttlCache[int]
	reads := 0
	read := func() (int, error) { reads++; return reads, nil }
	if v, _ := c.get(read); v != 1 {
		t.Fatalf("first get = %d", v)
	}
	if v, _ := c.get(read); v != 1 || reads != 1 {
		t.Errorf("second get within the TTL read again: v=%d reads=%d", v, reads)
	}
	c.at = c.at.Add(-2 * statusTTL)
	if v, _ := c.get(read); v != 2 {
		t.Errorf("stale value not refreshed: %d", v)
	}
	c.at = c.at.Add(-2 * statusTTL)
	if v, err := c.get(func() (int, error) { return 0, errors.New("boom") }); v != 2 || err == nil {
		t.Errorf("failed read = %d, %v; want the previous value and the error", v, err)
	}
}
