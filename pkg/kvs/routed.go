package kvs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// Routed is in-process access to a clustered tenant's keys wherever their
// slots live, with Local's methods and semantics. Every call runs a meta
// command (mg, ms, md, ma) through a session of the tenant exactly as a
// memcached client's request on this node's port: served here when this
// node is the slot's primary (a write then waits for its in-sync backups),
// forwarded to the primary otherwise. A call blocks until the reply is in:
// run it on a goroutine, never on an event loop.
type Routed struct {
	svc *service
}

// Routed returns routed access to a running tenant of a tier that joined
// a cluster; false if the tenant does not run here or the tier is not
// clustered (use Local then).
func (t *Tier) Routed(name string) (*Routed, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tn, ok := t.tenants[name]
	if !ok || tn.svc.router == nil {
		return nil, false
	}
	return &Routed{svc: tn.svc}, true
}

// errUnavailable wraps a SERVER_ERROR reply.
var errUnavailable = errors.New("kvs: server error")

// do runs one request (its line and data block, "\r\n" included) as a
// client connection of this node would, and returns the reply.
func (r *Routed) do(req []byte) []byte {
	var buf bytes.Buffer
	ow := &orderedWriter{w: bufWriter{&buf}}
	s := newSession(r.svc, bufio.NewReaderSize(bytes.NewReader(req), len(req)+16), ow)
	s.ow, s.sid = ow, r.svc.router.sessID.Add(1)
	line, err := s.readLine()
	if err == nil {
		s.ctr[cCommands]++
		err = s.dispatch(line)
	}
	s.flush() // sends what was forwarded and waits for the replies
	if err != nil {
		return []byte("SERVER_ERROR " + err.Error() + "\r\n")
	}
	return buf.Bytes()
}

// replyError turns an error reply into an error.
func replyError(op string, key, reply []byte) error {
	line, _, _ := bytes.Cut(reply, []byte("\r\n"))
	return fmt.Errorf("kvs: %s %q: %w: %s", op, key, errUnavailable, line)
}

// MaxItemSize is the tenant's largest accepted item (memcached -I).
func (r *Routed) MaxItemSize() int { return r.svc.cfg().MaxItemSize }

// Get returns key's live item wherever it is served. An error reply (the
// slot's primary cannot be reached) reads as a miss.
func (r *Routed) Get(key []byte) (Item, bool) {
	it, ok, _ := r.Lookup(key)
	return it, ok
}

// Lookup is Get that tells a miss from a failure.
func (r *Routed) Lookup(key []byte) (Item, bool, error) {
	if err := CheckKey(key); err != nil {
		return Item{}, false, err
	}
	now := r.svc.now()
	req := append(append([]byte("mg "), key...), " v f t c\r\n"...)
	reply := r.do(req)
	if bytes.Equal(reply, []byte("EN\r\n")) {
		return Item{}, false, nil
	}
	head, rest, ok := bytes.Cut(reply, []byte("\r\n"))
	f := bytes.Fields(head)
	if !ok || len(f) < 2 || string(f[0]) != "VA" {
		return Item{}, false, replyError("get", key, reply)
	}
	n, err := strconv.Atoi(string(f[1]))
	if err != nil || n < 0 || len(rest) != n+2 {
		return Item{}, false, replyError("get", key, reply)
	}
	it := Item{Value: rest[:n:n]}
	for _, tok := range f[2:] {
		v := string(tok[1:])
		switch tok[0] {
		case 'f':
			x, _ := strconv.ParseUint(v, 10, 32)
			it.Flags = uint32(x)
		case 't':
			if x, _ := strconv.ParseInt(v, 10, 64); x >= 0 {
				it.Exptime = now + x
			}
		case 'c':
			it.CAS, _ = strconv.ParseUint(v, 10, 64)
		}
	}
	return it, true, nil
}

// Set stores value under key as Local.Set does.
func (r *Routed) Set(key, value []byte, flags uint32, exptime int32) (Item, error) {
	if err := CheckKey(key); err != nil {
		return Item{}, err
	}
	now := r.svc.now()
	req := fmt.Appendf(nil, "ms %s %d F%d T%d c\r\n", key, len(value), flags, exptime)
	req = append(append(req, value...), '\r', '\n')
	reply := r.do(req)
	head, _, _ := bytes.Cut(reply, []byte("\r\n"))
	f := bytes.Fields(head)
	switch {
	case len(f) >= 1 && string(f[0]) == "HD":
		it := Item{Value: bytes.Clone(value), Flags: flags, Exptime: r.svc.absExptime(exptime, now)}
		for _, tok := range f[1:] {
			if tok[0] == 'c' {
				it.CAS, _ = strconv.ParseUint(string(tok[1:]), 10, 64)
			}
		}
		return it, nil
	case string(head) == "SERVER_ERROR object too large for cache":
		return Item{}, ErrTooLarge
	}
	return Item{}, replyError("set", key, reply)
}

// Delete removes key; it reports whether it was there.
func (r *Routed) Delete(key []byte) (bool, error) {
	if err := CheckKey(key); err != nil {
		return false, err
	}
	reply := r.do(append(append([]byte("md "), key...), '\r', '\n'))
	switch string(reply) {
	case "HD\r\n":
		return true, nil
	case "NF\r\n":
		return false, nil
	}
	return false, replyError("delete", key, reply)
}

// Delta is incr or decr of key as Local.Delta does.
func (r *Routed) Delta(key []byte, incr bool, delta uint64) (uint64, error) {
	if err := CheckKey(key); err != nil {
		return 0, err
	}
	mode := byte('I')
	if !incr {
		mode = 'D'
	}
	reply := r.do(fmt.Appendf(nil, "ma %s M%c D%d v\r\n", key, mode, delta))
	head, rest, _ := bytes.Cut(reply, []byte("\r\n"))
	switch {
	case string(head) == "NF":
		return 0, ErrNotFound
	case string(head) == "CLIENT_ERROR cannot increment or decrement non-numeric value":
		return 0, ErrNonNumeric
	case bytes.HasPrefix(head, []byte("VA ")):
		v, ok := parseUint64(bytes.TrimSuffix(rest, []byte("\r\n")))
		if ok {
			return v, nil
		}
	}
	return 0, replyError("delta", key, reply)
}
