package kvs

// storeCmd is the kind of storage command (memcached's NREAD_*).
type storeCmd uint8

const (
	cmdSet storeCmd = iota
	cmdAdd
	cmdReplace
	cmdAppend
	cmdPrepend
	cmdCAS
)

// storeResult is the outcome of a storage command.
type storeResult uint8

const (
	resStored storeResult = iota
	resNotStored
	resExists
	resNotFound
)

// update serves set, add, replace, append, prepend and cas
// (process_update_command).
func (s *session) update(nt, n int, cmd storeCmd) error {
	if cmd != cmdCAS && nt != 6 && nt != 7 {
		s.out("ERROR")
		return nil
	}
	s.setNoreply(n)
	key := s.toks[1]
	if len(key) > KeyMaxLength {
		s.out(errBadFormat)
		return nil
	}
	flags, ok1 := parseUint32(s.toks[2])
	exp, ok2 := parseInt32(s.toks[3])
	vlen, ok3 := parseInt32(s.toks[4])
	if !ok1 || !ok2 || !ok3 {
		s.out(errBadFormat)
		return nil
	}
	now := s.svc.now()
	exptime := s.svc.absExptime(exp, now)
	var reqCAS uint64
	if cmd == cmdCAS {
		var ok bool
		if reqCAS, ok = parseUint64(s.toks[5]); !ok {
			s.out(errBadFormat)
			return nil
		}
	}
	if vlen < 0 || vlen > 1<<31-1-2 {
		s.out(errBadFormat)
		return nil
	}
	if s.svc.itemTooLarge(len(key), int(vlen)) {
		s.ctr[cStoreTooLarge]++
		s.out("SERVER_ERROR object too large for cache")
		if cmd == cmdSet {
			// memcached drops the old value rather than keep stale data.
			if _, err := s.svc.store.Mutate(key, now, deleteFn); err != nil {
				s.svc.log.Error("kvs: delete after too large", "tenant", s.svc.name, "err", err)
			}
		}
		return s.swallow(int(vlen) + 2)
	}
	// The key leaves the read buffer before the data is read into it: a
	// set on a memory store reads into the block the store keeps, the
	// others into one allocation for key and data.
	var blk *block
	var buf []byte
	ms, isMem := s.svc.store.(*MemoryStore)
	if isMem && cmd == cmdSet {
		blk, buf = newBlock(key, int(vlen), 2)
	} else {
		key, buf = copyKey(key, int(vlen)+2)
	}
	ok, err := s.readChunk(buf)
	if err != nil {
		return err
	}
	s.ctr[cSetCmds]++
	if !ok {
		s.out("CLIENT_ERROR bad data chunk")
		return nil
	}
	var res storeResult
	if blk != nil {
		// The common case, without a MutateFunc or a copy.
		ms.setBlock(blk, now, flags, exptime)
		res = resStored
	} else {
		it := Item{Value: buf[:vlen:vlen], Flags: flags, Exptime: exptime}
		if res, _, err = s.store(key, now, cmd, it, reqCAS, 0); err != nil {
			s.outErr("SERVER_ERROR " + err.Error())
			return nil
		}
	}
	switch res {
	case resStored:
		s.out("STORED")
	case resNotStored:
		s.out("NOT_STORED")
	case resExists:
		s.out("EXISTS")
	case resNotFound:
		s.out("NOT_FOUND")
	}
	return nil
}

func deleteFn(cur Item, found bool) (Item, Op) { return cur, OpDelete }

// store applies a storage command (memcached's do_store_item) and returns
// the result and the stored item. setMeta is or-ed into the stored item's
// meta bits.
func (s *session) store(key []byte, now int64, cmd storeCmd, it Item, reqCAS uint64, setMeta uint8) (storeResult, Item, error) {
	var res storeResult
	stored, err := s.svc.store.Mutate(key, now, func(cur Item, found bool) (Item, Op) {
		switch cmd {
		case cmdAdd:
			if found {
				res = resNotStored
				return cur, OpKeep
			}
		case cmdReplace:
			if !found {
				res = resNotStored
				return cur, OpKeep
			}
		case cmdCAS:
			if !found {
				res = resNotFound
				s.ctr[cCasMisses]++
				return cur, OpKeep
			}
			if cur.CAS != reqCAS {
				res = resExists
				s.ctr[cCasBadval]++
				return cur, OpKeep
			}
			s.ctr[cCasHits]++
		case cmdAppend, cmdPrepend:
			if !found {
				res = resNotStored
				return cur, OpKeep
			}
			if reqCAS != 0 && reqCAS != cur.CAS {
				res = resExists
				return cur, OpKeep
			}
			if s.svc.itemTooLarge(len(key), len(cur.Value)+len(it.Value)) {
				res = resNotStored
				return cur, OpKeep
			}
			v := make([]byte, 0, len(cur.Value)+len(it.Value))
			if cmd == cmdAppend {
				v = append(append(v, cur.Value...), it.Value...)
			} else {
				v = append(append(v, it.Value...), cur.Value...)
			}
			it.Value, it.Flags, it.Exptime = v, cur.Flags, cur.Exptime
		}
		res = resStored
		it.Meta = setMeta
		return it, OpStore
	})
	return res, stored, err
}
