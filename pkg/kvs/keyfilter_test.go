package kvs

import (
	"fmt"
	"testing"
)

// TestKeyFilter checks that the filter has no false negatives and few
// false positives at its design load (10 bits a key).
func TestKeyFilter(t *testing.T) {
	f := newKeyFilter(128 << 10)
	f.layers = []*filterLayer{newFilterLayer(128 << 10)}
	keys := len(f.layers[0].blocks) * 512 / 10
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
}

// TestKeyFilterGrows checks that a filter starts small, grows as keys
// come without forgetting any, stops at its maximum, and keeps few false
// positives.
func TestKeyFilterGrows(t *testing.T) {
	f := newKeyFilter(1 << 20)
	if f.size() != filterStartSize {
		t.Fatalf("new filter of %d bytes, want %d", f.size(), filterStartSize)
	}
	keys := (1 << 20) / 64 * filterKeysPerBlock * 3 / 4
	for i := range keys {
		f.add(fmt.Appendf(nil, "key-%d", i))
		if f.full() {
			f = f.grown()
		}
	}
	if f.size() > 1<<20 || f.size() < 1<<19 {
		t.Errorf("filter of %d bytes after %d keys, want up to its maximum %d", f.size(), keys, 1<<20)
	}
	for i := range keys {
		if !f.mayContain(fmt.Appendf(nil, "key-%d", i)) {
			t.Fatalf("key-%d added but absent after growing", i)
		}
	}
	fp := 0
	for i := range keys {
		if f.mayContain(fmt.Appendf(nil, "other-%d", i)) {
			fp++
		}
	}
	if rate := float64(fp) / float64(keys); rate > 0.05 {
		t.Errorf("false positive rate %.4f after growing", rate)
	} else {
		t.Logf("false positive rate %.4f, %d layers, %d bytes", rate, len(f.layers), f.size())
	}
	// A maximum smaller than the start size wins.
	if g := newKeyFilter(4096); g.size() != 4096 || g.full() {
		t.Errorf("filter of %d bytes, want 4096", g.size())
	}
}
