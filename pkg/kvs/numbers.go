package kvs

import "math"

// The parsers below reproduce memcached's safe_strto* helpers (util.c),
// which wrap the C library's strto* functions: leading white space and a
// sign are accepted, parsing stops at the first non-digit, which must be
// white space or the end of the token, and out-of-range values fail. The
// quirks (a "-" accepted by the unsigned parsers when the result is small,
// silent truncation to 32 bits) are memcached's; clients observe them.

func isCSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// cScan parses like strtoull/strtoll base 10. It returns the magnitude,
// whether a minus sign was seen, whether the magnitude overflowed uint64,
// and whether the token is acceptable (digits present, followed by the end
// or white space).
func cScan(tok []byte) (mag uint64, neg, overflow, ok bool) {
	i := 0
	for i < len(tok) && isCSpace(tok[i]) {
		i++
	}
	if i < len(tok) && (tok[i] == '+' || tok[i] == '-') {
		neg = tok[i] == '-'
		i++
	}
	start := i
	for ; i < len(tok) && tok[i] >= '0' && tok[i] <= '9'; i++ {
		d := uint64(tok[i] - '0')
		if mag > (math.MaxUint64-d)/10 {
			overflow = true
		}
		mag = mag*10 + d
	}
	if i == start {
		return 0, neg, false, false
	}
	if i < len(tok) && !isCSpace(tok[i]) {
		return 0, neg, overflow, false
	}
	return mag, neg, overflow, true
}

// parseUint64 is memcached's safe_strtoull.
func parseUint64(tok []byte) (uint64, bool) {
	mag, neg, overflow, ok := cScan(tok)
	if !ok || overflow {
		return 0, false
	}
	v := mag
	if neg {
		v = -mag
	}
	if int64(v) < 0 && neg {
		return 0, false
	}
	return v, true
}

// parseUint32 is memcached's safe_strtoul on a 64-bit platform: parsed as
// unsigned long, then truncated to 32 bits.
func parseUint32(tok []byte) (uint32, bool) {
	v, ok := parseUint64(tok)
	return uint32(v), ok
}

// parseInt32 is memcached's safe_strtol: parsed as a 64-bit long, then
// truncated to 32 bits.
func parseInt32(tok []byte) (int32, bool) {
	mag, neg, overflow, ok := cScan(tok)
	if !ok || overflow {
		return 0, false
	}
	if neg {
		if mag > 1<<63 {
			return 0, false
		}
		return int32(-int64(mag)), true
	}
	if mag > math.MaxInt64 {
		return 0, false
	}
	return int32(int64(mag)), true
}
