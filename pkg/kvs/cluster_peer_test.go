package kvs

import "testing"

func TestDataLen(t *testing.T) {
	for _, tc := range []struct {
		line string
		n    int
		ok   bool
	}{
		{"VALUE k 0 5\r\n", 5, true},
		{"VALUE k 12 0 99\r\n", 0, true}, // gets: the cas unique follows
		{"VALUE k 1 123 77\r\n", 123, true},
		{"VALUE k\xc2\xa0x 0 7\r\n", 7, true}, // a key byte that is not a space
		{"VALUE k 0\r\n", 0, false},
		{"VALUE k 0 -1\r\n", 0, false},
		{"VALUE k 0 5x\r\n", 0, false},
		{"VALUE k 0 999999999999999999999\r\n", 0, false},
		{"VA 10 f1 t-1\r\n", 10, true},
		{"VA 3\r\n", 3, true},
		{"VA \r\n", 0, false},
		{"HD\r\n", 0, false},
		{"END\r\n", 0, false},
	} {
		n, ok := dataLen([]byte(tc.line))
		if n != tc.n || ok != tc.ok {
			t.Errorf("dataLen(%q) = %d, %v; want %d, %v", tc.line, n, ok, tc.n, tc.ok)
		}
	}
}

func BenchmarkDataLen(b *testing.B) {
	line := []byte("VALUE memcload:1234 0 64\r\n")
	b.ReportAllocs()
	for b.Loop() {
		dataLen(line)
	}
}
