package kvs

import (
	"errors"
	"testing"
)

func TestLocalRoundTripsWithTheProtocol(t *testing.T) {
	tier, addrs := startTier(t, Options{}, TenantConfig{Name: "a", MaxItemSize: 1024})
	l, ok := tier.Local("a")
	if !ok {
		t.Fatal("no Local for a running tenant")
	}
	if _, ok := tier.Local("nobody"); ok {
		t.Fatal("Local for an unknown tenant")
	}
	c := dial(t, addrs["a"])
	bin := []byte{0, 1, 2, '\r', '\n', 0xff}
	if _, err := l.Set([]byte("k1"), bin, 42, 0); err != nil {
		t.Fatal(err)
	}
	if got, want := c.do("get k1\r\n", 4), "VALUE k1 42 6\r\n"+string(bin)+"\r\nEND\r\n"; got != want {
		t.Errorf("memcached reads %q, want %q", got, want)
	}
	c.do("set k2 7 0 3\r\nabc\r\n", 1)
	it, ok := l.Get([]byte("k2"))
	if !ok || string(it.Value) != "abc" || it.Flags != 7 {
		t.Errorf("Local reads %q flags %d ok %v", it.Value, it.Flags, ok)
	}
	c.do("set n 0 0 2\r\n10\r\n", 1)
	if v, err := l.Delta([]byte("n"), false, 3); err != nil || v != 7 {
		t.Errorf("decr: %d %v", v, err)
	}
	if v, err := l.Delta([]byte("n"), true, 5); err != nil || v != 12 {
		t.Errorf("incr: %d %v", v, err)
	}
	if got := c.do("get n\r\n", 3); got != "VALUE n 0 2\r\n12\r\nEND\r\n" {
		t.Errorf("memcached reads %q after incr", got)
	}
	if _, err := l.Delta([]byte("k2"), true, 1); !errors.Is(err, ErrNonNumeric) {
		t.Errorf("incr of text: %v", err)
	}
	if _, err := l.Delta([]byte("absent"), true, 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("incr of absent: %v", err)
	}
	if _, err := l.Set([]byte("k2"), make([]byte, 2000), 0, 0); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too large: %v", err)
	}
	if _, ok := l.Get([]byte("k2")); ok {
		t.Error("a refused set left the old value, memcached drops it")
	}
	if found, err := l.Delete([]byte("k1")); err != nil || !found {
		t.Errorf("delete: %v %v", found, err)
	}
	if got := c.do("get k1\r\n", 1); got != "END\r\n" {
		t.Errorf("memcached reads %q after delete", got)
	}
	if _, err := l.Set([]byte("gone"), []byte("x"), 0, -1); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Get([]byte("gone")); ok {
		t.Error("negative exptime: item is live")
	}
}

func TestCheckKey(t *testing.T) {
	long := make([]byte, 251)
	for i := range long {
		long[i] = 'a'
	}
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"a", true}, {"user:1/x", true}, {string(long[:250]), true},
		{"", false}, {string(long), false}, {"a b", false}, {"a\nb", false}, {"\x00", false}, {"a\x7f", false},
	} {
		if err := CheckKey([]byte(tc.key)); (err == nil) != tc.ok {
			t.Errorf("CheckKey(%q) = %v", tc.key, err)
		}
	}
}
