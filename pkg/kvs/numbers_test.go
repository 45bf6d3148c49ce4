package kvs

import "testing"

func TestParseNumbers(t *testing.T) {
	tests := []struct {
		in    string
		u64   uint64
		u64ok bool
		u32   uint32
		i32   int32
		i32ok bool
	}{
		{"0", 0, true, 0, 0, true},
		{"42", 42, true, 42, 42, true},
		{"+5", 5, true, 5, 5, true},
		{"-0", 0, true, 0, 0, true},
		{"-1", 0, false, 0, -1, true},
		{" 7", 7, true, 7, 7, true},
		{"7\t", 7, true, 7, 7, true},
		{"7x", 0, false, 0, 0, false},
		{"", 0, false, 0, 0, false},
		{"-", 0, false, 0, 0, false},
		{"0x10", 0, false, 0, 0, false},
		{"18446744073709551615", 18446744073709551615, true, 4294967295, 0, false},
		{"18446744073709551616", 0, false, 0, 0, false},
		{"4294967296", 4294967296, true, 0, 0, true},
		{"9223372036854775808", 9223372036854775808, true, 0, 0, false},
		{"-9223372036854775808", 0, false, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			u64, ok := parseUint64([]byte(tt.in))
			if ok != tt.u64ok || (ok && u64 != tt.u64) {
				t.Errorf("parseUint64 = %d, %v; want %d, %v", u64, ok, tt.u64, tt.u64ok)
			}
			u32, ok32 := parseUint32([]byte(tt.in))
			if ok32 != tt.u64ok || (ok32 && u32 != tt.u32) {
				t.Errorf("parseUint32 = %d, %v; want %d, %v", u32, ok32, tt.u32, tt.u64ok)
			}
			i32, ok := parseInt32([]byte(tt.in))
			if ok != tt.i32ok || (ok && i32 != tt.i32) {
				t.Errorf("parseInt32 = %d, %v; want %d, %v", i32, ok, tt.i32, tt.i32ok)
			}
		})
	}
}
