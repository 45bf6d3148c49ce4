package kvs

import (
	"fmt"
	"log/slog"
	"testing"
)

func TestCrawl(t *testing.T) {
	durable, err := OpenDurable(slog.New(slog.DiscardHandler), DurableOptions{Dir: t.TempDir(), MemoryLimit: 64 << 20, Sync: SyncGroup})
	if err != nil {
		t.Fatal(err)
	}
	defer durable.Close()
	for _, tc := range []struct {
		name  string
		store Store
	}{{"memory", NewMemoryStore(64 << 20)}, {"durable", durable}} {
		t.Run(tc.name, func(t *testing.T) {
			const now = 1000
			want := map[string]bool{}
			for i := range 3000 {
				k := fmt.Sprintf("user:%04d", i)
				if i%3 == 0 {
					k = fmt.Sprintf("item:%04d", i)
				}
				exp := int64(0)
				if i%10 == 1 {
					exp = now - 1 // expired: never listed
				} else if k[0] == 'u' {
					want[k] = true
				}
				if _, err := tc.store.Mutate([]byte(k), now-5, func(Item, bool) (Item, Op) {
					return Item{Value: []byte("vv"), Flags: 7, Exptime: exp}, OpStore
				}); err != nil {
					t.Fatal(err)
				}
			}
			c := tc.store.(Crawler)
			got := map[string]bool{}
			cursor, calls := "", 0
			for {
				keys, next, err := c.Crawl(cursor, []byte("user:"), 50, 100, now)
				if err != nil {
					t.Fatal(err)
				}
				if len(keys) > 50 {
					t.Fatalf("%d keys over the limit", len(keys))
				}
				for _, k := range keys {
					if k.Size != 2 || k.Flags != 7 {
						t.Errorf("key info %+v", k)
					}
					got[string(k.Key)] = true
				}
				calls++
				if next == "" {
					break
				}
				if calls > 10000 {
					t.Fatal("the crawl does not end")
				}
				cursor = next
			}
			if len(got) != len(want) {
				t.Errorf("listed %d keys, want %d", len(got), len(want))
			}
			for k := range want {
				if !got[k] {
					t.Errorf("%s not listed", k)
					break
				}
			}
			if _, _, err := c.Crawl("x.1", nil, 10, 10, now); err == nil {
				t.Error("a bad cursor is accepted")
			}
		})
	}
}

// FuzzCrawlCursor: a cursor from outside (a URL) never panics a crawl.
func FuzzCrawlCursor(f *testing.F) {
	s := NewMemoryStore(1 << 20)
	for i := range 100 {
		s.Mutate(fmt.Appendf(nil, "k%d", i), 1, func(Item, bool) (Item, Op) { return Item{Value: []byte("v")}, OpStore })
	}
	for _, c := range []string{"", "m.0.0", "m.127.99999", "m.-1.0", "m.128.0", "d.00", "m.1"} {
		f.Add(c, "k")
	}
	f.Fuzz(func(t *testing.T, cursor, prefix string) {
		keys, _, err := s.Crawl(cursor, []byte(prefix), 10, 100, 1)
		if err != nil && len(keys) > 0 {
			t.Fatal("keys with an error")
		}
	})
}
