package kvs

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestIndexAgainstMap runs random sets, replacements and deletes on an
// index and on a Go map side by side and checks that every key finds what
// the map holds. The hashes are drawn from a few values only, so keys
// collide on whole hashes (the key compare decides), probe runs are long
// and wrap around the table's end, and deletes shift blocks back across
// it.
func TestIndexAgainstMap(t *testing.T) {
	for _, distinct := range []int{1, 3, 64, 1 << 20} {
		t.Run(fmt.Sprint(distinct, " hashes"), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(distinct)))
			var x index
			model := map[string]*block{}
			hashOf := map[string]uint64{}
			keys := make([]string, 300)
			for i := range keys {
				keys[i] = fmt.Sprintf("key-%d", i)
				// High bits pick the home slot, here from the last two
				// slots of the table on; the low shardBits are the
				// shard's, equal for every key of a shard.
				hashOf[keys[i]] = (uint64(rng.IntN(distinct))-2)<<shardBits | 5
			}
			for step := range 20000 {
				k := keys[rng.IntN(len(keys))]
				h := hashOf[k]
				old := model[k]
				if got := x.get(h, []byte(k)); got != old {
					t.Fatalf("step %d: get %s = %p, want %p", step, k, got, old)
				}
				if old != nil && rng.IntN(3) == 0 {
					x.del(h, old)
					delete(model, k)
				} else {
					b, _ := newBlock([]byte(k), 1, 0)
					x.set(h, old, b)
					model[k] = b
				}
				if x.n != len(model) {
					t.Fatalf("step %d: index holds %d blocks, want %d", step, x.n, len(model))
				}
			}
			for _, k := range keys {
				if got := x.get(hashOf[k], []byte(k)); got != model[k] {
					t.Fatalf("end: get %s = %p, want %p", k, got, model[k])
				}
			}
			seen := 0
			x.each(func(b *block) {
				seen++
				if model[string(b.keyBytes())] != b {
					t.Errorf("each: %s is not the block the key has", b.keyBytes())
				}
			})
			if seen != len(model) {
				t.Errorf("each visited %d blocks, want %d", seen, len(model))
			}
		})
	}
}

// TestIndexLoad checks that the table keeps free slots (a probe for an
// absent key ends) and grows only as needed.
func TestIndexLoad(t *testing.T) {
	var x index
	for i := range 10000 {
		k := fmt.Appendf(nil, "k%d", i)
		b, _ := newBlock(k, 0, 0)
		x.set(uint64(i)<<shardBits, nil, b)
		if x.n*indexLoadDen > len(x.slots)*indexLoadNum {
			t.Fatalf("%d blocks in %d slots", x.n, len(x.slots))
		}
	}
	if len(x.slots) != 16384 {
		t.Errorf("10000 blocks in %d slots, want 16384", len(x.slots))
	}
	if x.get(uint64(20000)<<shardBits, []byte("absent")) != nil {
		t.Error("found an absent key")
	}
}
