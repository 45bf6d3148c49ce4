package kvs

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stats serves "stats" and its sub-commands for this tenant only.
func (s *session) stats(n int) {
	s.svc.ctr.merge(&s.ctr)
	if n == 1 {
		s.statsGeneral()
		return
	}
	switch string(s.toks[1]) {
	case "reset":
		s.svc.ctr.reset()
		s.svc.store.ResetStats()
		s.out("RESET")
	case "settings":
		s.statsSettings()
	case "items":
		s.statsItems()
	case "slabs":
		s.statsSlabs()
	case "detail":
		if n < 3 {
			s.out("CLIENT_ERROR usage: stats detail on|off|dump")
			return
		}
		switch string(s.toks[2]) {
		case "on", "off":
			s.out("OK")
		case "dump":
			s.out("END")
		default:
			s.out("CLIENT_ERROR usage: stats detail on|off|dump")
		}
	case "cachedump":
		// Key listing is not offered over the wire; memcached answers an
		// empty class the same way.
		s.out("END")
	default:
		s.out("ERROR")
	}
}

// statWriter accumulates "STAT name value" lines.
type statWriter struct {
	s *session
	b []byte
}

func (w *statWriter) str(name, v string) {
	w.b = append(w.b, "STAT "...)
	w.b = append(w.b, name...)
	w.b = append(w.b, ' ')
	w.b = append(w.b, v...)
	w.b = append(w.b, '\r', '\n')
}

func (w *statWriter) u(name string, v uint64) { w.str(name, strconv.FormatUint(v, 10)) }
func (w *statWriter) i(name string, v int64)  { w.str(name, strconv.FormatInt(v, 10)) }

func (w *statWriter) end() {
	w.b = append(w.b, "END\r\n"...)
	w.s.write(w.b)
}

func (s *session) statsGeneral() {
	svc := s.svc
	c := &svc.ctr
	st := svc.store.Stats()
	now := svc.now()
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	tv := func(t syscall.Timeval) string { return fmt.Sprintf("%d.%06d", t.Sec, t.Usec) }
	w := &statWriter{s: s}
	w.i("pid", int64(os.Getpid()))
	w.i("uptime", now-svc.started)
	w.i("time", now)
	w.str("version", Version)
	w.str("libevent", "go")
	w.i("pointer_size", 64)
	w.str("rusage_user", tv(ru.Utime))
	w.str("rusage_system", tv(ru.Stime))
	w.i("max_connections", int64(svc.cfg().MaxConns))
	w.i("curr_connections", svc.curConns.Load())
	w.u("total_connections", svc.totConns.Load())
	w.u("rejected_connections", svc.rejected.Load())
	w.i("connection_structures", svc.curConns.Load())
	w.u("cmd_get", c.load(cGetCmds))
	w.u("cmd_set", c.load(cSetCmds))
	w.u("cmd_flush", c.load(cFlushCmds))
	w.u("cmd_touch", c.load(cTouchCmds))
	w.u("cmd_meta", c.load(cMetaCmds))
	w.u("get_hits", c.load(cGetHits))
	w.u("get_misses", c.load(cGetMisses))
	w.u("get_expired", st.GetExpired)
	w.u("delete_misses", c.load(cDeleteMisses))
	w.u("delete_hits", c.load(cDeleteHits))
	w.u("incr_misses", c.load(cIncrMisses))
	w.u("incr_hits", c.load(cIncrHits))
	w.u("decr_misses", c.load(cDecrMisses))
	w.u("decr_hits", c.load(cDecrHits))
	w.u("cas_misses", c.load(cCasMisses))
	w.u("cas_hits", c.load(cCasHits))
	w.u("cas_badval", c.load(cCasBadval))
	w.u("touch_hits", c.load(cTouchHits))
	w.u("touch_misses", c.load(cTouchMisses))
	w.u("store_too_large", c.load(cStoreTooLarge))
	w.u("auth_cmds", 0)
	w.u("auth_errors", 0)
	w.u("bytes_read", c.load(cBytesRead))
	w.u("bytes_written", c.load(cBytesWritten))
	w.i("limit_maxbytes", st.LimitBytes)
	w.i("threads", int64(runtime.GOMAXPROCS(0)))
	w.i("bytes", st.Bytes)
	w.i("curr_items", st.Items)
	w.u("total_items", st.TotalItems)
	w.u("evictions", st.Evictions)
	w.u("reclaimed", st.Reclaimed)
	w.str("store", string(svc.cfg().Store))
	w.end()
}

func (s *session) statsSettings() {
	cfg := s.svc.cfg()
	w := &statWriter{s: s}
	w.i("maxbytes", cfg.MemoryLimit)
	w.i("maxconns", int64(cfg.MaxConns))
	w.str("tcpport", portOf(cfg.Listen))
	w.str("udpport", "0")
	w.str("evictions", "on")
	w.i("item_size_max", int64(cfg.MaxItemSize))
	w.str("cas_enabled", "yes")
	w.i("idle_timeout", int64(cfg.IdleTimeout/time.Second))
	w.str("store", string(cfg.Store))
	if cfg.Store == StoreDurable {
		w.str("sync", string(cfg.Sync))
		w.str("sync_interval", cfg.SyncInterval.String())
	}
	w.end()
}

func portOf(addr string) string {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "0"
	}
	return addr[i+1:]
}

// statsItems reports, per memcached slab class holding items, the
// counters lbd keeps (memcached's names; lbd has no slabs, see
// slabclass.go). mem_requested is lbd's bytes for the items.
func (s *session) statsItems() {
	w := &statWriter{s: s}
	for _, c := range s.svc.store.ClassStats() {
		if c.Items == 0 {
			continue // as memcached: only classes holding items
		}
		p := "items:" + strconv.Itoa(c.Class) + ":"
		w.i(p+"number", c.Items)
		w.i(p+"mem_requested", c.Bytes)
		w.u(p+"evicted", c.Evicted)
		w.u(p+"evicted_nonzero", c.EvictedNonzero)
		w.u(p+"outofmemory", c.OutOfMemory)
		w.u(p+"tailrepairs", 0)
		w.u(p+"reclaimed", c.Reclaimed)
		w.u(p+"expired_unfetched", c.ExpiredUnfetched)
		w.u(p+"evicted_unfetched", c.EvictedUnfetched)
	}
	w.end()
}

// statsSlabs reports, per memcached slab class holding items, its chunk
// size and the chunks memcached would use for them; total_malloced is the
// memory lbd accounts to the items.
func (s *session) statsSlabs() {
	st := s.svc.store.Stats()
	w := &statWriter{s: s}
	active := int64(0)
	for _, c := range s.svc.store.ClassStats() {
		if c.Items == 0 {
			continue
		}
		active++
		perPage := int64(mcPageSize / c.ChunkSize)
		pages := (c.Items + perPage - 1) / perPage
		p := strconv.Itoa(c.Class) + ":"
		w.i(p+"chunk_size", int64(c.ChunkSize))
		w.i(p+"chunks_per_page", perPage)
		w.i(p+"total_pages", pages)
		w.i(p+"total_chunks", pages*perPage)
		w.i(p+"used_chunks", c.Items)
		w.i(p+"free_chunks", pages*perPage-c.Items)
		w.i(p+"free_chunks_end", 0)
	}
	w.i("active_slabs", active)
	w.i("total_malloced", st.Bytes)
	w.end()
}
