package kvs

import (
	"bytes"
	"strconv"
)

// deltaResult is the outcome of incr/decr (memcached's delta_result_type).
type deltaResult uint8

const (
	deltaOK deltaResult = iota
	deltaNonNumeric
	deltaNotFound
	deltaCASMismatch
)

// addDelta is memcached's do_add_delta: 64-bit wrap on incr, floor 0 on
// decr; a shorter result is padded with spaces to the old length (the item
// is rewritten in place in memcached). num is the new number as text.
func (s *session) addDelta(key []byte, now int64, incr bool, delta, reqCAS uint64, mod func(*Item)) (deltaResult, string, Item, error) {
	res := deltaNotFound
	var num string
	it, err := s.svc.store.Mutate(key, now, func(cur Item, found bool) (Item, Op) {
		if !found {
			return cur, OpKeep
		}
		if len(cur.Value) == 0 {
			res = deltaNonNumeric
			return cur, OpKeep
		}
		if reqCAS != 0 && cur.CAS != reqCAS {
			res = deltaCASMismatch
			return cur, OpKeep
		}
		v, ok := parseUint64(cur.Value)
		if !ok {
			res = deltaNonNumeric
			return cur, OpKeep
		}
		if incr {
			v += delta
		} else if delta > v {
			v = 0
		} else {
			v -= delta
		}
		res = deltaOK
		num = strconv.FormatUint(v, 10)
		nv := []byte(num)
		if len(nv) < len(cur.Value) {
			nv = append(nv, bytes.Repeat([]byte{' '}, len(cur.Value)-len(nv))...)
		}
		next := cur
		next.Value = nv
		if mod != nil {
			mod(&next)
		}
		return next, OpStore
	})
	return res, num, it, err
}

// countDelta counts an incr or decr hit or miss.
func (s *session) countDelta(incr, hit bool) {
	switch {
	case incr && hit:
		s.ctr[cIncrHits]++
	case incr:
		s.ctr[cIncrMisses]++
	case hit:
		s.ctr[cDecrHits]++
	default:
		s.ctr[cDecrMisses]++
	}
}

// classicKey returns the key of incr, decr, delete or touch; ok is false,
// and the client told, if it is too long.
func (s *session) classicKey() (key []byte, ok bool) {
	key = s.toks[1]
	if len(key) > KeyMaxLength {
		s.out(errBadFormat)
		return nil, false
	}
	return key, true
}

// arith serves incr and decr.
func (s *session) arith(n int, incr bool) {
	s.setNoreply(n)
	key, ok := s.classicKey()
	if !ok {
		return
	}
	delta, ok := parseUint64(s.toks[2])
	if !ok {
		s.out("CLIENT_ERROR invalid numeric delta argument")
		return
	}
	res, num, _, err := s.addDelta(key, s.svc.now(), incr, delta, 0, nil)
	if err != nil {
		s.outErr("SERVER_ERROR " + err.Error())
		return
	}
	switch res {
	case deltaOK:
		s.countDelta(incr, true)
		s.out(num)
	case deltaNonNumeric:
		s.out("CLIENT_ERROR cannot increment or decrement non-numeric value")
	case deltaNotFound:
		s.countDelta(incr, false)
		s.out("NOT_FOUND")
	}
}

// delete serves delete (process_delete_command).
func (s *session) delete(nt, n int) {
	if nt > 3 {
		holdIsZero := string(s.toks[2]) == "0"
		setsNoreply := s.setNoreply(n)
		valid := (nt == 4 && (holdIsZero || setsNoreply)) || (nt == 5 && holdIsZero && setsNoreply)
		if !valid {
			s.out("CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]")
			return
		}
	}
	key, ok := s.classicKey()
	if !ok {
		return
	}
	found := false
	_, err := s.svc.store.Mutate(key, s.svc.now(), func(cur Item, ok bool) (Item, Op) {
		found = ok
		return cur, OpDelete
	})
	if err != nil {
		s.outErr("SERVER_ERROR " + err.Error())
		return
	}
	if found {
		s.ctr[cDeleteHits]++
		s.out("DELETED")
	} else {
		s.ctr[cDeleteMisses]++
		s.out("NOT_FOUND")
	}
}

// touch serves touch.
func (s *session) touch(n int) {
	s.setNoreply(n)
	key, ok := s.classicKey()
	if !ok {
		return
	}
	e, ok := parseInt32(s.toks[2])
	if !ok {
		s.out("CLIENT_ERROR invalid exptime argument")
		return
	}
	now := s.svc.now()
	exptime := s.svc.absExptime(e, now)
	found := false
	_, err := s.svc.store.Mutate(key, now, func(cur Item, ok bool) (Item, Op) {
		if !ok {
			return cur, OpKeep
		}
		found = true
		cur.Exptime = exptime
		cur.Meta |= MetaFetched
		return cur, OpTouch
	})
	if err != nil {
		s.outErr("SERVER_ERROR " + err.Error())
		return
	}
	s.ctr[cTouchCmds]++
	if found {
		s.ctr[cTouchHits]++
		s.out("TOUCHED")
	} else {
		s.ctr[cTouchMisses]++
		s.out("NOT_FOUND")
	}
}

// flushAll serves flush_all [delay] [noreply].
func (s *session) flushAll(nt, n int) {
	noreply := s.setNoreply(n)
	s.ctr[cFlushCmds]++
	var exp int32
	want := 2
	if noreply {
		want = 3
	}
	if nt != want {
		var ok bool
		if exp, ok = parseInt32(s.toks[1]); !ok {
			s.out("CLIENT_ERROR invalid exptime argument")
			return
		}
	}
	now := s.svc.now()
	at := now
	if exp > 0 {
		at = s.svc.absExptime(exp, now)
	}
	s.svc.flushAll(at, now)
	s.out("OK")
}
