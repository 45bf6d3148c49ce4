package kvs

import "encoding/base64"

const (
	// metaMaxTokens is memcached's MFLAG_MAX_OPT_LENGTH (counted with the
	// terminal token).
	metaMaxTokens = 20
	// metaMaxOpaque is MFLAG_MAX_OPAQUE_LENGTH.
	metaMaxOpaque = 32
	errBadFormat  = "CLIENT_ERROR bad command line format"
)

// metaFlags is the parsed flag set of a meta command (memcached's
// _meta_flags).
type metaFlags struct {
	hasError   bool
	noUpdate   bool
	locked     bool
	vivify     bool
	value      bool
	setStale   bool
	noReply    bool
	hasCAS     bool
	newTTL     bool
	keyBinary  bool
	mode       byte
	exptime    int64
	autoviv    int64
	recache    int64
	clientFlag uint32
	reqCAS     uint64
	delta      uint64
	initial    uint64
}

// preparse is _meta_flag_preparse: it checks the flags from token start,
// decodes a base64 key in place (s.toks[1]) and returns the error reply.
func (s *session) preparse(n, start int, now int64) (metaFlags, string, bool) {
	var of metaFlags
	errstr := errBadFormat
	var seen [127]bool
	for i := start; i < n; i++ {
		tok := s.toks[i]
		o := tok[0]
		if o >= 127 || seen[o] {
			return of, "CLIENT_ERROR duplicate flag", false
		}
		seen[o] = true
		switch o {
		case 'b':
			k := s.toks[1]
			dst := make([]byte, base64.StdEncoding.DecodedLen(len(k)))
			m, err := base64.StdEncoding.Decode(dst, k)
			if err != nil || m == 0 {
				errstr = "CLIENT_ERROR error decoding key"
				of.hasError = true
				m = 0
			}
			s.toks[1] = dst[:m]
			of.keyBinary = true
		case 'N', 'T', 'R':
			of.locked = true
			v, ok := parseInt32(tok[1:])
			if !ok {
				errstr = "CLIENT_ERROR bad token in command line format"
				of.hasError = true
				break
			}
			t := s.svc.absExptime(v, now)
			switch o {
			case 'N':
				of.vivify = true
				of.autoviv = t
			case 'T':
				of.exptime = t
				of.newTTL = true
			case 'R':
				of.recache = t
			}
		case 'l', 'h':
			of.locked = true
		case 'O', 'P', 'L', 'k', 's', 't', 'c', 'f':
		case 'v':
			of.value = true
		case 'u':
			of.noUpdate = true
		case 'q':
			of.noReply = true
		case 'F':
			v, ok := parseUint32(tok[1:])
			if !ok {
				of.hasError = true
			}
			of.clientFlag = v
		case 'C':
			v, ok := parseUint64(tok[1:])
			if !ok {
				errstr = "CLIENT_ERROR bad token in command line format"
				of.hasError = true
			} else {
				of.reqCAS = v
				of.hasCAS = true
			}
		case 'M':
			if len(tok) != 2 {
				errstr = "CLIENT_ERROR incorrect length for M token"
				of.hasError = true
			} else {
				of.mode = tok[1]
			}
		case 'J':
			v, ok := parseUint64(tok[1:])
			if !ok {
				errstr = "CLIENT_ERROR invalid numeric initial value"
				of.hasError = true
			}
			of.initial = v
		case 'D':
			v, ok := parseUint64(tok[1:])
			if !ok {
				errstr = "CLIENT_ERROR invalid numeric delta value"
				of.hasError = true
			}
			of.delta = v
		case 'I':
			of.setStale = true
		default:
			return of, "CLIENT_ERROR invalid flag", false
		}
	}
	return of, errstr, !of.hasError
}

// appendMetaKey appends " k<key>" (base64 with " b" for binary keys).
func appendMetaKey(b, key []byte, binary bool) []byte {
	b = append(b, ' ', 'k')
	if !binary {
		return append(b, key...)
	}
	b = base64.StdEncoding.AppendEncode(b, key)
	return append(b, ' ', 'b')
}
