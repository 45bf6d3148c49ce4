package kvs

import "strconv"

// metaOpaque appends the O and k flags of a reply (the part every meta
// status shares). ok is false if an opaque is too long.
func (s *session) metaOpaqueKey(b []byte, n int, key []byte, binary bool) ([]byte, bool) {
	for i := 2; i < n; i++ {
		tok := s.toks[i]
		switch tok[0] {
		case 'O':
			if len(tok) > metaMaxOpaque {
				return b, false
			}
			b = append(b, ' ')
			b = append(b, tok...)
		case 'k':
			b = appendMetaKey(b, key, binary)
		}
	}
	return b, true
}

func appendTTL(b []byte, exp, now int64) []byte {
	b = append(b, ' ', 't')
	if exp == 0 {
		return append(b, '-', '1')
	}
	return strconv.AppendUint(b, uint64(uint32(exp-now)), 10)
}

// metaGet serves mg (process_mget_command).
func (s *session) metaGet(n int) {
	if n+1 < 3 {
		s.out("ERROR")
		return
	}
	if len(s.toks[1]) > KeyMaxLength {
		s.outErr(errBadFormat)
		return
	}
	if n+1 > metaMaxTokens {
		s.outErr("CLIENT_ERROR options flags are too long")
		return
	}
	now := s.svc.now()
	of, errstr, ok := s.preparse(n, 2, now)
	if !ok {
		s.outErr(errstr)
		return
	}
	s.noreply = of.noReply
	key := s.toks[1]

	var pre, it Item
	var found, created, won bool
	if !of.locked && !of.vivify {
		pre, found = s.svc.store.Get(key, now)
		it = pre
	}
	// A stale item hands out a win token, which is a write.
	if of.locked || of.vivify || (found && pre.Meta&MetaStale != 0) {
		found = false
		var err error
		it, err = s.svc.store.Mutate(key, now, func(cur Item, ok bool) (Item, Op) {
			if !ok {
				if !of.vivify {
					return cur, OpKeep
				}
				found, created, won = true, true, true
				return Item{Value: []byte{}, Exptime: of.autoviv, Meta: MetaTokenSent}, OpStore
			}
			found, pre = true, cur
			next := cur
			for i := 2; i < n; i++ {
				switch s.toks[i][0] {
				case 'T':
					next.Exptime = of.exptime
				case 'R':
					if cur.Meta&MetaTokenSent == 0 && next.Exptime != 0 && next.Exptime < of.recache {
						won = true
					}
				}
			}
			if cur.Meta&MetaStale != 0 && cur.Meta&MetaTokenSent == 0 {
				won = true
			}
			if won {
				next.Meta |= MetaTokenSent
			}
			if !of.noUpdate {
				next.Meta |= MetaFetched
				next.Atime = now
			}
			return next, OpTouch
		})
		if err != nil {
			s.outErr("SERVER_ERROR " + err.Error())
			return
		}
		if created {
			pre = it
		}
	}

	b := s.scratch[:0]
	if !found {
		s.ctr[cGetCmds]++
		s.ctr[cGetMisses]++
		b = append(b, 'E', 'N')
		b, ok = s.metaOpaqueKey(b, n, key, of.keyBinary)
		if !ok {
			s.outErr("CLIENT_ERROR opaque token too long")
			return
		}
		if s.noreply {
			s.noreply = false
			return
		}
		b = append(b, '\r', '\n')
		s.scratch = b[:0]
		s.write(b)
		return
	}
	if of.newTTL {
		s.ctr[cTouchCmds]++
		s.ctr[cTouchHits]++
	} else {
		s.ctr[cGetCmds]++
		s.ctr[cGetHits]++
	}
	if of.value {
		b = append(b, "VA "...)
		b = strconv.AppendUint(b, uint64(len(it.Value)), 10)
	} else {
		b = append(b, 'H', 'D')
	}
	exp := pre.Exptime
	for i := 2; i < n; i++ {
		tok := s.toks[i]
		switch tok[0] {
		case 'T':
			exp = of.exptime
		case 'N':
			if created {
				exp = of.autoviv
			}
		case 's':
			b = append(b, ' ', 's')
			b = strconv.AppendUint(b, uint64(len(it.Value)), 10)
		case 't':
			b = appendTTL(b, exp, now)
		case 'c':
			b = append(b, ' ', 'c')
			b = strconv.AppendUint(b, it.CAS, 10)
		case 'f':
			b = append(b, ' ', 'f')
			b = strconv.AppendUint(b, uint64(it.Flags), 10)
		case 'l':
			b = append(b, ' ', 'l')
			b = strconv.AppendUint(b, uint64(uint32(now-pre.Atime)), 10)
		case 'h':
			b = append(b, ' ', 'h', '0')
			if pre.Meta&MetaFetched != 0 {
				b[len(b)-1] = '1'
			}
		case 'O':
			if len(tok) > metaMaxOpaque {
				s.outErr("CLIENT_ERROR opaque token too long")
				return
			}
			b = append(b, ' ')
			b = append(b, tok...)
		case 'k':
			b = appendMetaKey(b, key, it.Meta&MetaKeyBinary != 0)
		}
	}
	if !created && pre.Meta&MetaTokenSent != 0 {
		b = append(b, ' ', 'Z')
	}
	if !created && pre.Meta&MetaStale != 0 {
		b = append(b, ' ', 'X')
	}
	if won {
		b = append(b, ' ', 'W')
	}
	b = append(b, '\r', '\n')
	s.scratch = b[:0]
	s.noreply = false
	s.write(b)
	if of.value {
		s.write(it.Value)
		s.write(crlf)
	}
}

// metaSet serves ms (process_mset_command).
func (s *session) metaSet(n int) error {
	nt := n + 1
	if nt < 3 {
		s.out("ERROR")
		return nil
	}
	if len(s.toks[1]) > KeyMaxLength || nt == 3 {
		s.outErr(errBadFormat)
		return nil
	}
	if nt > metaMaxTokens {
		s.outErr("CLIENT_ERROR options flags too long")
		return nil
	}
	vlen, ok := parseInt32(s.toks[2])
	if !ok || vlen < 0 || vlen > 1<<31-1-2 {
		s.outErr(errBadFormat)
		return nil
	}
	now := s.svc.now()
	of, errstr, ok := s.preparse(n, 3, now)
	fail := func(msg string) error {
		s.outErr(msg)
		return s.swallow(int(vlen) + 2)
	}
	if !ok {
		return fail(errstr)
	}
	s.noreply = of.noReply
	key := s.toks[1] // in the read buffer (unless decoded) until copied below
	// Remember the reply flags: the tokens live in the read buffer.
	var ret []byte
	for i := 3; i < n; i++ {
		tok := s.toks[i]
		switch tok[0] {
		case 'O':
			if len(tok) > metaMaxOpaque {
				return fail("CLIENT_ERROR opaque token too long")
			}
			ret = append(append(ret, ' '), tok...)
		case 'k', 'c':
			ret = append(ret, ' ', tok[0])
		}
	}
	cmd := cmdSet
	switch of.mode {
	case 0, 'S':
	case 'E':
		cmd = cmdAdd
	case 'A':
		cmd = cmdAppend
	case 'P':
		cmd = cmdPrepend
	case 'R':
		cmd = cmdReplace
	default:
		return fail("CLIENT_ERROR invalid mode for ms M token")
	}
	if of.hasCAS && (cmd == cmdSet || cmd == cmdReplace) {
		cmd = cmdCAS
	}
	if s.svc.itemTooLarge(len(key), int(vlen)) {
		s.ctr[cStoreTooLarge]++
		if _, err := s.svc.store.Mutate(key, now, deleteFn); err != nil {
			s.svc.log.Error("kvs: delete after too large", "tenant", s.svc.name, "err", err)
		}
		return fail("SERVER_ERROR object too large for cache")
	}
	key, buf := copyKey(key, int(vlen)+2)
	ok, err := s.readChunk(buf)
	if err != nil {
		return err
	}
	s.ctr[cSetCmds]++
	if !ok {
		s.outErr("CLIENT_ERROR bad data chunk")
		return nil
	}
	data := buf[:vlen:vlen]
	var meta uint8
	if of.setStale && cmd == cmdCAS {
		meta = MetaStale
	}
	if of.keyBinary {
		meta |= MetaKeyBinary
	}
	res, stored, err := s.store(key, now, cmd, Item{Value: data, Flags: of.clientFlag, Exptime: of.exptime}, of.reqCAS, meta)
	if err != nil {
		s.outErr("SERVER_ERROR " + err.Error())
		return nil
	}
	b := s.scratch[:0]
	switch res {
	case resStored:
		b = append(b, 'H', 'D')
		if s.noreply {
			s.noreply = false
			return nil
		}
	case resExists:
		b = append(b, 'E', 'X')
	case resNotFound:
		b = append(b, 'N', 'F')
	case resNotStored:
		b = append(b, 'N', 'S')
	}
	s.noreply = false
	for i := 0; i < len(ret); i++ {
		switch ret[i] {
		case 'O':
			j := i
			for j < len(ret) && ret[j] != ' ' {
				j++
			}
			b = append(append(b, ' '), ret[i:j]...)
			i = j
		case 'k':
			b = appendMetaKey(b, key, of.keyBinary)
		case 'c':
			b = append(b, ' ', 'c')
			if res == resStored {
				b = strconv.AppendUint(b, stored.CAS, 10)
			} else {
				b = append(b, '0')
			}
		}
	}
	b = append(b, '\r', '\n')
	s.scratch = b[:0]
	s.write(b)
	return nil
}

// metaKeyFlags checks the command line of md and ma (the checks their
// memcached functions share: key, token count, flags), parses the flags and
// sets noreply from them. ok is false if it has answered an error.
func (s *session) metaKeyFlags(n int) (of metaFlags, now int64, ok bool) {
	if n+1 < 3 {
		s.out("ERROR")
		return of, 0, false
	}
	if len(s.toks[1]) > KeyMaxLength {
		s.out(errBadFormat)
		return of, 0, false
	}
	if n+1 > metaMaxTokens {
		s.out("CLIENT_ERROR options flags too long")
		return of, 0, false
	}
	now = s.svc.now()
	of, _, ok = s.preparse(n, 2, now)
	if !ok {
		s.outErr("CLIENT_ERROR invalid or duplicate flag")
		return of, now, false
	}
	s.noreply = of.noReply
	return of, now, true
}

// metaDelete serves md (process_mdelete_command).
func (s *session) metaDelete(n int) {
	of, now, ok := s.metaKeyFlags(n)
	if !ok {
		return
	}
	key := s.toks[1]
	b := append(s.scratch[:0], 'X', 'X')
	b, ok = s.metaOpaqueKey(b, n, key, of.keyBinary)
	if !ok {
		s.outErr("CLIENT_ERROR opaque token too long")
		return
	}
	status := "NF"
	_, err := s.svc.store.Mutate(key, now, func(cur Item, found bool) (Item, Op) {
		if !found {
			return cur, OpKeep
		}
		if of.hasCAS && cur.CAS != of.reqCAS {
			status = "EX"
			return cur, OpKeep
		}
		status = "HD"
		if of.setStale {
			if of.newTTL {
				cur.Exptime = of.exptime
			}
			cur.Meta = (cur.Meta | MetaStale) &^ MetaTokenSent
			return cur, OpStore
		}
		return cur, OpDelete
	})
	if err != nil {
		s.outErr("SERVER_ERROR " + err.Error())
		return
	}
	switch status {
	case "HD":
		s.ctr[cDeleteHits]++
		if s.noreply {
			s.noreply = false
			return
		}
	default:
		s.ctr[cDeleteMisses]++
	}
	s.noreply = false
	copy(b, status)
	b = append(b, '\r', '\n')
	s.scratch = b[:0]
	s.write(b)
}

// metaArith serves ma (process_marithmetic_command).
func (s *session) metaArith(n int) {
	of, now, ok := s.metaKeyFlags(n)
	if !ok {
		return
	}
	key := s.toks[1]
	incr := true
	if !seenFlag(s, n, 'D') {
		of.delta = 1
	}
	switch of.mode {
	case 0, 'I', '+':
	case 'D', '-':
		incr = false
	default:
		s.outErr("CLIENT_ERROR invalid mode for ma M token")
		return
	}
	// T and N change the expiry of the item being written.
	var preExp int64
	mod := func(it *Item) {
		preExp = it.Exptime
		for i := 2; i < n; i++ {
			if s.toks[i][0] == 'T' {
				it.Exptime = of.exptime
			}
		}
	}
	res, num, it, err := s.addDelta(key, now, incr, of.delta, of.reqCAS, mod)
	if err != nil {
		s.outErr("SERVER_ERROR " + err.Error())
		return
	}
	created := false
	b := s.scratch[:0]
	switch res {
	case deltaNonNumeric:
		s.outErr("CLIENT_ERROR cannot increment or decrement non-numeric value")
		return
	case deltaNotFound:
		if of.vivify {
			num = strconv.FormatUint(of.initial, 10)
			nv := Item{Value: []byte(num)}
			for i := 2; i < n; i++ {
				switch s.toks[i][0] {
				case 'T':
					nv.Exptime = of.exptime
				case 'N':
					nv.Exptime = of.autoviv
				}
			}
			r, stored, err := s.store(key, now, cmdAdd, nv, 0, 0)
			if err != nil {
				s.outErr("SERVER_ERROR " + err.Error())
				return
			}
			if r == resStored {
				created, it, res = true, stored, deltaOK
			} else {
				b = append(b, 'N', 'S')
			}
		} else {
			s.countDelta(incr, false)
			b = append(b, 'N', 'F')
		}
	case deltaCASMismatch:
		b = append(b, 'E', 'X')
	}
	if res == deltaOK {
		s.countDelta(incr, true)
		if of.value {
			b = append(b, "VA "...)
			b = strconv.AppendUint(b, uint64(len(num)), 10)
		} else {
			b = append(b, 'H', 'D')
		}
		exp := preExp
		if created {
			exp = 0
		}
		for i := 2; i < n; i++ {
			tok := s.toks[i]
			switch tok[0] {
			case 'c':
				b = append(b, ' ', 'c')
				b = strconv.AppendUint(b, it.CAS, 10)
			case 't':
				b = appendTTL(b, exp, now)
			case 'T':
				exp = of.exptime
			case 'N':
				if created {
					exp = of.autoviv
				}
			case 'O':
				if len(tok) > metaMaxOpaque {
					s.outErr("CLIENT_ERROR opaque token too long")
					return
				}
				b = append(append(b, ' '), tok...)
			case 'k':
				b = appendMetaKey(b, key, of.keyBinary)
			}
		}
		if of.value {
			b = append(b, '\r', '\n')
			b = append(b, num...)
		}
		if s.noreply {
			s.noreply = false
			s.scratch = b[:0]
			return
		}
	} else {
		b, ok = s.metaOpaqueKey(b, n, key, of.keyBinary)
		if !ok {
			s.outErr("CLIENT_ERROR opaque token too long")
			return
		}
	}
	s.noreply = false
	b = append(b, '\r', '\n')
	s.scratch = b[:0]
	s.write(b)
}

func seenFlag(s *session, n int, f byte) bool {
	for i := 2; i < n; i++ {
		if s.toks[i][0] == f {
			return true
		}
	}
	return false
}

// metaDebug serves me (process_meta_command).
func (s *session) metaDebug(n int) {
	s.ctr[cMetaCmds]++ // memcached 1.6 counts only me in cmd_meta
	if n+1 < 3 || len(s.toks[1]) > KeyMaxLength {
		s.out(errBadFormat)
		return
	}
	now := s.svc.now()
	it, ok := s.svc.store.Get(s.toks[1], now)
	if !ok {
		s.out("EN")
		return
	}
	exp := int64(-1)
	if it.Exptime != 0 {
		exp = now - it.Exptime
	}
	fetch := "no"
	if it.Meta&MetaFetched != 0 {
		fetch = "yes"
	}
	b := append(s.scratch[:0], "ME "...)
	b = append(b, s.toks[1]...)
	b = append(b, " exp="...)
	b = strconv.AppendInt(b, exp, 10)
	b = append(b, " la="...)
	b = strconv.AppendInt(b, now-it.Atime, 10)
	b = append(b, " cas="...)
	b = strconv.AppendUint(b, it.CAS, 10)
	b = append(b, " fetch="...)
	b = append(b, fetch...)
	b = append(b, " cls=1 size="...)
	b = strconv.AppendInt(b, itemSize(s.toks[1], it.Value), 10)
	b = append(b, '\r', '\n')
	s.scratch = b[:0]
	s.write(b)
}
