package kvs

import "strconv"

// get serves get, gets, gat and gats. Keys beyond the first maxTokens-1
// tokens come from rest, as in memcached's chunked tokenizing.
func (s *session) get(line []byte, n int, rest []byte, withCAS, touch bool) {
	first := 1
	var exptime int64
	now := s.svc.now()
	if touch {
		e, ok := parseInt32(s.toks[1])
		if !ok {
			s.out("CLIENT_ERROR invalid exptime argument")
			return
		}
		exptime = s.svc.absExptime(e, now)
		first = 2
	}
	// memcached discards every VALUE already produced when a key is too
	// long; checking first gives the same bytes without buffering.
	for i := first; i < n; i++ {
		if len(s.toks[i]) > KeyMaxLength {
			s.out(errBadFormat)
			return
		}
	}
	tooLong := false
	eachField(rest, func(k []byte) bool {
		tooLong = len(k) > KeyMaxLength
		return !tooLong
	})
	if tooLong {
		s.out(errBadFormat)
		return
	}
	for i := first; i < n; i++ {
		if !s.getOne(s.toks[i], now, withCAS, touch, exptime) {
			return
		}
	}
	done := true
	eachField(rest, func(k []byte) bool {
		done = s.getOne(k, now, withCAS, touch, exptime)
		return done
	})
	if !done {
		return
	}
	s.w.WriteString("END\r\n")
	s.ctr[cBytesWritten] += 5
}

// eachField calls fn for every space-separated field of b until it returns
// false.
func eachField(b []byte, fn func([]byte) bool) {
	start := 0
	for i := 0; i <= len(b); i++ {
		if i == len(b) || b[i] == ' ' {
			if i > start && !fn(b[start:i]) {
				return
			}
			start = i + 1
		}
	}
}

// getOne writes key's VALUE block if it is live. It reports false when the
// reply must end here: output overflowed (the command is rerun where it
// may block) or a touch could not be stored (SERVER_ERROR written, no END,
// as memcached ends a get it cannot complete).
func (s *session) getOne(key []byte, now int64, withCAS, touch bool, exptime int64) bool {
	if s.overflow || (s.outPending != nil && s.outPending() > s.outLimit) {
		s.overflow = true
		return false
	}
	var it Item
	var ok bool
	if touch {
		var err error
		if it, ok, err = s.touchOne(key, now, exptime); err != nil {
			s.outErr("SERVER_ERROR " + err.Error())
			return false
		}
	} else {
		s.ctr[cGetCmds]++
		it, ok = s.svc.store.Get(key, now)
		if ok {
			s.ctr[cGetHits]++
		} else {
			s.ctr[cGetMisses]++
		}
	}
	if !ok {
		return true
	}
	b := append(s.scratch[:0], "VALUE "...)
	b = append(b, key...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(it.Flags), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(len(it.Value)), 10)
	if withCAS {
		b = append(b, ' ')
		b = strconv.AppendUint(b, it.CAS, 10)
	}
	b = append(b, '\r', '\n')
	s.scratch = b[:0]
	s.write(b)
	s.write(it.Value)
	s.write(crlf)
	return true
}

// touchOne is the gat part of getOne: it sets key's expiry and returns the
// item. (Apart, so that a plain get does not pay for the closure.)
func (s *session) touchOne(key []byte, now, exptime int64) (Item, bool, error) {
	s.ctr[cTouchCmds]++
	ok := false
	it, err := s.svc.store.Mutate(key, now, func(cur Item, found bool) (Item, Op) {
		if !found {
			return cur, OpKeep
		}
		ok = true
		cur.Exptime = exptime
		cur.Meta |= MetaFetched
		cur.Atime = now
		return cur, OpTouch
	})
	if err != nil {
		return Item{}, false, err
	}
	if ok {
		s.ctr[cTouchHits]++
	} else {
		s.ctr[cTouchMisses]++
	}
	return it, ok, nil
}

var crlf = []byte("\r\n")
