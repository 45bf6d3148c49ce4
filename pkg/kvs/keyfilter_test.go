package kvs

import (
	"fmt"
	"testing"
)

// TestKeyFilter checks that the filter has no false negatives, few false
// positives at its design load (10 bits a key), and forgets on reset.
func TestKeyFilter(t *testing.T) {
	f := newKeyFilter(128 << 10)
	keys := len(f.blocks) * 512 / 10
	for i := range keys {
		f.add(fmt.Appendf(nil, "key-%d", i))
	}
	for i := range keys {
		if !f.mayContain(fmt.Appendf(nil, "key-%d", i)) {
			t.Fatalf("key-%d added but absent", i)
		}
	}
	fp := 0
	for i := range keys {
		if f.mayContain(fmt.Appendf(nil, "other-%d", i)) {
			fp++
		}
	}
	if rate := float64(fp) / float64(keys); rate > 0.03 {
		t.Errorf("false positive rate %.4f at 10 bits a key", rate)
	} else {
		t.Logf("false positive rate %.4f", rate)
	}
	f.reset()
	for i := range 1000 {
		if f.mayContain(fmt.Appendf(nil, "key-%d", i)) {
			t.Fatalf("key-%d present after reset", i)
		}
	}
}
