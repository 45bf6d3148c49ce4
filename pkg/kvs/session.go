package kvs

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// maxTokens is memcached's MAX_TOKENS: at most maxTokens-1 tokens are split
// off a line; the rest is left for multi-get continuation.
const maxTokens = 24

// readBufSize is the per-connection read buffer; it also bounds the length
// of every request line except multi-gets.
const readBufSize = 16 << 10

// errLineTooLong ends a connection that sent a request line over the limit.
var errLineTooLong = errors.New("kvs: request line too long")

// errCrossProtocol ends a connection that sent an HTTP request line.
var errCrossProtocol = errors.New("kvs: HTTP request on a memcached port")

// maxLineNoGet is memcached's limit on a request line that has no
// newline yet: past it, anything but a get or gets closes the connection
// (try_read_command_ascii).
const maxLineNoGet = 2048

// errQuit ends a connection that sent "quit".
var errQuit = errors.New("kvs: quit")

// reqReader is what a session reads requests from: a *bufio.Reader on a
// connection, or an event loop's buffer (which reports errNeedMore when a
// request is incomplete).
type reqReader interface {
	io.Reader
	ReadSlice(delim byte) ([]byte, error)
	Buffered() int
	Discard(n int) (int, error)
}

// respWriter is what a session writes replies to.
type respWriter interface {
	io.Writer
	io.StringWriter
	Flush() error
}

// session is one client connection's protocol state.
type session struct {
	svc     *service
	r       reqReader
	w       respWriter
	ctr     localCounters
	noreply bool
	toks    [maxTokens][]byte
	big     []byte // a multi-get line longer than the read buffer
	scratch []byte // response line being built
	// beforeRead is called when the session is about to block on input.
	beforeRead func()
	// outPending, if set, reports replies not yet written; a multi-get
	// that would take it past outLimit stops and sets overflow, so that
	// an event loop can rerun it where output may block.
	outPending func() int
	outLimit   int
	overflow   bool
	// awaitLine, set for a blocking reader, waits until the next line is
	// complete or breaks memcached's rule for a line without a newline
	// (an event loop's reader applies the rule itself).
	awaitLine func() error
	// Clustered tenants (see routed): ow orders local and forwarded
	// replies, sid picks the session's connection to each node, and peer
	// marks a connection from another node (served here, never forwarded).
	ow   *orderedWriter
	sid  uint64
	peer bool
	// route is routeGet's buffers: a client's request, and its part
	// run here (see runLocal); routeDepth is how many are in use.
	route      [2]routeScratch
	routeDepth int
	// local collects the reply of a request's part run here, as long as
	// localSize, the last one's (see runLocal).
	local     evWriter
	localSize int
}

func newSession(svc *service, r reqReader, w respWriter) *session {
	s := &session{svc: svc, r: r, w: w, scratch: make([]byte, 0, 512)}
	if br, ok := r.(*bufio.Reader); ok {
		s.awaitLine = func() error { return awaitLine(br) }
	}
	return s
}

// awaitLine reads into br until its buffer holds a newline, or refuses
// the line as memcached does: past maxLineNoGet bytes without a newline,
// only a get or gets may go on (a multi-get, which ReadSlice then takes
// in pieces). A read error is left for ReadSlice to report.
func awaitLine(br *bufio.Reader) error {
	for {
		n := br.Buffered()
		b, _ := br.Peek(n)
		switch {
		case bytes.IndexByte(b, '\n') >= 0:
			return nil
		case n > maxLineNoGet && !isGetPrefix(b):
			return errLineTooLong
		case n > maxLineNoGet || n >= br.Size():
			return nil
		}
		if _, err := br.Peek(n + 1); err != nil {
			return nil
		}
	}
}

// reqsPerFlush is how many pipelined requests a session runs before it
// writes their replies out: memcached's reqs_per_event (-R, 20), after
// which memcached yields and flushes its responses too. Without it a deep
// pipeline of writes that each wait (for backups, for a disk) got no reply
// until the last one ran, and a forwarding node, which times a peer out
// when no reply comes for its request timeout, failed the lot. A routed
// client session (ow set) is the exception: its flush waits for the
// replies of what it forwarded, so it flushes once its input is drained,
// and its forwards stay pipelined.
const reqsPerFlush = 20

// serve runs the request loop until the input ends or fails.
func (s *session) serve() error {
	unflushed := 0
	for {
		if s.r.Buffered() == 0 || (unflushed >= reqsPerFlush && s.ow == nil) {
			// Nothing pipelined behind this request (or enough of them
			// ran): answer now.
			if err := s.flush(); err != nil {
				return err
			}
			unflushed = 0
			if s.r.Buffered() == 0 && s.beforeRead != nil {
				s.beforeRead()
			}
		}
		unflushed++
		line, err := s.readLine()
		if err != nil {
			s.flush()
			return err
		}
		s.ctr[cCommands]++
		if err := s.dispatch(line); err != nil {
			s.flush()
			return err
		}
	}
}

func (s *session) flush() error {
	s.svc.ctr.merge(&s.ctr)
	return s.w.Flush()
}

// readLine returns the next request line without its "\n" (and "\r"). The
// slice is valid until the next read.
func (s *session) readLine() ([]byte, error) {
	if s.awaitLine != nil {
		if err := s.awaitLine(); err != nil {
			return nil, err
		}
	}
	line, err := s.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		// Only multi-gets may be longer than the buffer (memcached closes
		// the connection for anything else too).
		if !isGetPrefix(line) {
			return nil, errLineTooLong
		}
		s.big = append(s.big[:0], line...)
		for err == bufio.ErrBufferFull {
			line, err = s.r.ReadSlice('\n')
			if len(s.big)+len(line) > s.svc.cfg().MaxGetLine {
				s.big = nil
				return nil, errLineTooLong
			}
			s.big = append(s.big, line...)
		}
		line = s.big
	}
	if err != nil {
		return nil, err
	}
	s.ctr[cBytesRead] += uint64(len(line))
	n := len(line) - 1
	if n > 1 && line[n-1] == '\r' {
		n--
	}
	line = line[:n]
	// memcached handles the line as a C string.
	if i := bytes.IndexByte(line, 0); i >= 0 {
		line = line[:i]
	}
	return line, nil
}

func isGetPrefix(line []byte) bool {
	i := 0
	for i < len(line) && line[i] == ' ' {
		i++
	}
	if i > 100 {
		return false
	}
	rest := line[i:]
	return bytes.HasPrefix(rest, []byte("get ")) || bytes.HasPrefix(rest, []byte("gets "))
}

// tokenize splits line on spaces like memcached's tokenize_command: at most
// maxTokens-1 tokens; rest is the unprocessed remainder (nil if none).
func tokenize(line []byte, toks *[maxTokens][]byte) (n int, rest []byte) {
	start := 0
	for i := 0; i < len(line); i++ {
		if line[i] != ' ' {
			continue
		}
		if start != i {
			toks[n] = line[start:i]
			n++
			if n == maxTokens-1 {
				if i+1 < len(line) {
					return n, line[i+1:]
				}
				return n, nil
			}
		}
		start = i + 1
	}
	if start != len(line) {
		toks[n] = line[start:]
		n++
	}
	return n, nil
}

// out writes a one-line reply, unless the command asked for noreply.
func (s *session) out(str string) {
	if s.noreply {
		s.noreply = false
		return
	}
	s.w.WriteString(str)
	s.w.WriteString("\r\n")
	s.ctr[cBytesWritten] += uint64(len(str) + 2)
}

// outErr writes an error reply even under noreply.
func (s *session) outErr(str string) {
	s.noreply = false
	s.out(str)
}

func (s *session) write(b []byte) {
	s.w.Write(b)
	s.ctr[cBytesWritten] += uint64(len(b))
}

// setNoreply is memcached's set_noreply_maybe: the last token may be
// "noreply".
func (s *session) setNoreply(n int) bool {
	if n > 0 && string(s.toks[n-1]) == "noreply" {
		s.noreply = true
	}
	return s.noreply
}

// swallow discards n bytes of input (a data block that will not be stored).
func (s *session) swallow(n int) error {
	_, err := s.r.Discard(n)
	s.ctr[cBytesRead] += uint64(n)
	return err
}

// dispatch runs one request line. It returns an error only when the
// connection must end.
func (s *session) dispatch(line []byte) error {
	s.noreply = false
	n, rest := tokenize(line, &s.toks)
	nt := n + 1 // memcached counts the terminal token
	if nt < 2 || len(s.toks[0]) < 2 {
		s.out("ERROR")
		return nil
	}
	if s.svc.router != nil {
		if done, err := s.routed(line, n, rest); done {
			return err
		}
	}
	cmd := s.toks[0]
	switch {
	case cmd[0] == 'm' && len(cmd) == 2:
		switch cmd[1] {
		case 'g':
			s.metaGet(n)
		case 's':
			return s.metaSet(n)
		case 'd':
			s.metaDelete(n)
		case 'n':
			s.out("MN")
			if s.peer {
				return nil // a forwarded request's end: not a flush
			}
			return s.flush()
		case 'a':
			s.metaArith(n)
		case 'e':
			s.metaDebug(n)
		default:
			s.out("ERROR")
		}
		return nil
	case cmd[0] == 'g':
		if nt < 3 {
			s.out("ERROR")
			return nil
		}
		switch string(cmd) {
		case "get":
			s.get(line, n, rest, false, false)
		case "gets":
			s.get(line, n, rest, true, false)
		case "gat":
			s.get(line, n, rest, false, true)
		case "gats":
			s.get(line, n, rest, true, true)
		default:
			s.out("ERROR")
		}
		return nil
	}
	switch string(cmd) {
	case "set":
		return s.update(nt, n, cmdSet)
	case "add":
		return s.update(nt, n, cmdAdd)
	case "replace":
		return s.update(nt, n, cmdReplace)
	case "append":
		return s.update(nt, n, cmdAppend)
	case "prepend":
		return s.update(nt, n, cmdPrepend)
	case "cas":
		if nt != 7 && nt != 8 {
			s.out("ERROR")
			return nil
		}
		return s.update(nt, n, cmdCAS)
	case "incr", "decr":
		if nt != 4 && nt != 5 {
			s.out("ERROR")
			return nil
		}
		s.arith(n, cmd[0] == 'i')
	case "delete":
		if nt < 3 || nt > 5 {
			s.out("ERROR")
			return nil
		}
		s.delete(nt, n)
	case "touch":
		if nt != 4 && nt != 5 {
			s.out("ERROR")
			return nil
		}
		s.touch(n)
	case "bget":
		if nt < 3 {
			s.out("ERROR")
			return nil
		}
		s.get(line, n, rest, false, false)
	case "flush_all":
		if nt < 2 || nt > 4 {
			s.out("ERROR")
			return nil
		}
		s.flushAll(nt, n)
	case "version":
		s.out("VERSION " + Version)
	case "quit":
		return errQuit
	case "verbosity":
		if nt != 3 && nt != 4 {
			s.out("ERROR")
			return nil
		}
		s.setNoreply(n)
		if _, ok := parseUint32(s.toks[1]); !ok {
			s.out(errBadFormat)
			return nil
		}
		s.out("OK")
	case "stats":
		s.stats(n)
	case "cache_memlimit":
		if nt != 3 && nt != 4 {
			s.out("ERROR")
			return nil
		}
		// A tenant's memory limit is the operator's to set, not the
		// client's.
		s.setNoreply(n)
		s.out("MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust")
	case "shutdown":
		s.out("ERROR: shutdown not enabled")
	default:
		// An unknown command whose last token starts with "HTTP/" is an
		// HTTP request line (a browser made to post to this port):
		// memcached closes the connection without a reply, so that the
		// lines that follow never run as commands.
		if bytes.HasPrefix(s.toks[n-1], []byte("HTTP/")) {
			return errCrossProtocol
		}
		s.out("ERROR")
	}
	return nil
}

// copyKey copies key into a new allocation with n bytes of room after it:
// a key still in the read buffer then survives reading a data block into
// the room, and the item's key and value take one allocation.
func copyKey(key []byte, n int) (k, room []byte) {
	buf := make([]byte, len(key)+n)
	copy(buf, key)
	return buf[:len(key):len(key)], buf[len(key):]
}

// readChunk fills buf with a data block and its "\r\n" (the last two
// bytes of buf). ok is false if the terminator is wrong (the bytes are
// consumed either way).
func (s *session) readChunk(buf []byte) (ok bool, err error) {
	if _, err := io.ReadFull(s.r, buf); err != nil {
		return false, err
	}
	s.ctr[cBytesRead] += uint64(len(buf))
	n := len(buf)
	return buf[n-2] == '\r' && buf[n-1] == '\n', nil
}

// evWriter collects replies until the loop writes them.
type evWriter struct {
	buf []byte
	off int
}

// Write appends p.
func (w *evWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// WriteString appends s.
func (w *evWriter) WriteString(s string) (int, error) {
	w.buf = append(w.buf, s...)
	return len(s), nil
}

// Flush does nothing: the loop writes.
func (w *evWriter) Flush() error { return nil }

// pending is the number of bytes not yet written.
func (w *evWriter) pending() int { return len(w.buf) - w.off }
