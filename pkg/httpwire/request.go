// Package httpwire is a small, strict HTTP/1.1 request parser and response
// writer for servers that run requests out of a buffer (lbd's event loops)
// instead of net/http's goroutine per connection: a request line, header
// fields and a Content-Length body, with limits on each, keep-alive and
// pipelining. It parses only what is complete in the buffer and never
// blocks; what it refuses (a malformed request, a chunked body, a request
// over a limit) comes back as an *Error with the HTTP status to answer,
// after which the connection must close. Responses are written byte for
// byte as net/http's server writes them.
package httpwire

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
)

// Limits bound a request.
type Limits struct {
	// MaxLine bounds the request line (status 414 past it).
	MaxLine int
	// MaxHeader bounds the request line and header fields together
	// (status 431 past it).
	MaxHeader int
	// MaxFields bounds the number of header fields (status 431).
	MaxFields int
	// MaxBody bounds a body (status 413 past it).
	MaxBody int
}

// DefaultLimits are net/http's server defaults where it has them.
var DefaultLimits = Limits{MaxLine: 8 << 10, MaxHeader: 64 << 10, MaxFields: 100, MaxBody: 1 << 20}

// Request is a parsed request. Body aliases the parsed buffer.
type Request struct {
	Method string
	// Target is the request-target as sent; URL is it parsed.
	Target string
	URL    *url.URL
	// Minor is the protocol's minor version: HTTP/1.0 or HTTP/1.1.
	Minor  int
	Header http.Header
	// Host is the Host field.
	Host string
	// ContentLength is the body's length (0 without a body).
	ContentLength int
	Body          []byte
	// Close: the client asked to close the connection after the answer
	// (HTTP/1.0 without keep-alive, or "Connection: close").
	Close bool
	// KeepAlive10: an HTTP/1.0 client asked to keep the connection.
	KeepAlive10 bool
	// Expect100: the client waits for "100 Continue" before the body.
	Expect100 bool
}

// Proto is the request's protocol version, as net/http names it.
func (r *Request) Proto() string {
	if r.Minor == 0 {
		return "HTTP/1.0"
	}
	return "HTTP/1.1"
}

// Error is a request refused before it runs: answer Status and close the
// connection. Code and Field name the fault as the REST API's errors do.
type Error struct {
	Status  int
	Code    string
	Field   string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("httpwire: %d %s: %s", e.Status, e.Code, e.Message)
}

func errorf(status int, code, field, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrIncomplete reports a request not all in the buffer yet.
var ErrIncomplete = errors.New("httpwire: incomplete request")

// Parse parses the request at the start of buf. It returns the request and
// the bytes it took (head and body); or ErrIncomplete and, once the head is
// in, the bytes the whole request takes (0 before: read on); or an *Error.
func Parse(buf []byte, lim Limits) (req *Request, n int, err error) {
	p := Parser{Limits: lim}
	return p.Parse(buf)
}

// Parser parses a connection's requests as Parse does, allocating little
// for a keep-alive client's requests: the field values and the target it
// repeats on every request (Host, Authorization, Accept...) keep their
// strings, and a request given back with Recycle is reused.
type Parser struct {
	Limits Limits
	free   *Request
	vals   []string // the free request's field values
	last   map[string]string
	target string
	url    *url.URL
}

// Recycle gives req back for the next Parse: nothing may use it after.
func (p *Parser) Recycle(req *Request) { p.free = req }

// intern returns v as a string, the last one seen for field name if
// equal.
func (p *Parser) intern(name string, v []byte) string {
	if s, ok := p.last[name]; ok && s == string(v) {
		return s
	}
	s := string(v)
	if p.last == nil || len(p.last) >= 32 {
		p.last = make(map[string]string, 16)
	}
	p.last[name] = s
	return s
}

// Parse parses the request at the start of buf (see the function Parse).
func (p *Parser) Parse(buf []byte) (req *Request, n int, err error) {
	lim := p.Limits
	skip := 0
	in := buf[skip:]
	eol := bytes.IndexByte(in, '\n')
	if eol < 0 {
		if len(in) > lim.MaxLine {
			return nil, 0, errorf(http.StatusRequestURITooLong, "uri_too_long", "", "request line over %d bytes", lim.MaxLine)
		}
		return nil, 0, ErrIncomplete
	}
	if eol > lim.MaxLine {
		return nil, 0, errorf(http.StatusRequestURITooLong, "uri_too_long", "", "request line over %d bytes", lim.MaxLine)
	}
	line := trimCR(in[:eol])
	var vals []string
	if req = p.free; req != nil {
		p.free = nil
		h := req.Header
		clear(h)
		*req = Request{Header: h}
		vals = p.vals[:0]
	} else {
		req = &Request{Header: make(http.Header, 8)}
	}
	if err := req.parseLine(line, p); err != nil {
		return nil, 0, err
	}
	// The header fields, up to the empty line.
	off := eol + 1
	fields := 0
	var cl []byte
	for {
		rest := in[off:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			if off+len(rest) > lim.MaxHeader {
				return nil, 0, errorf(http.StatusRequestHeaderFieldsTooLarge, "header_too_large", "header", "request header over %d bytes", lim.MaxHeader)
			}
			return nil, 0, ErrIncomplete
		}
		if off+i+1 > lim.MaxHeader {
			return nil, 0, errorf(http.StatusRequestHeaderFieldsTooLarge, "header_too_large", "header", "request header over %d bytes", lim.MaxHeader)
		}
		f := trimCR(rest[:i])
		off += i + 1
		if len(f) == 0 {
			break
		}
		if fields++; fields > lim.MaxFields {
			return nil, 0, errorf(http.StatusRequestHeaderFieldsTooLarge, "header_too_large", "header", "more than %d header fields", lim.MaxFields)
		}
		if f[0] == ' ' || f[0] == '\t' {
			return nil, 0, errorf(http.StatusBadRequest, "bad_header", "header", "obsolete line folding in the header")
		}
		colon := bytes.IndexByte(f, ':')
		if colon <= 0 || !isToken(f[:colon]) {
			return nil, 0, errorf(http.StatusBadRequest, "bad_header", "header", "malformed header field %q", clip(f))
		}
		v := trimOWS(f[colon+1:])
		if !validValue(v) {
			return nil, 0, errorf(http.StatusBadRequest, "bad_header", "header."+string(f[:colon]), "control character in header field %s", f[:colon])
		}
		name := canonical(f[:colon])
		if name == "Content-Length" {
			if cl != nil && !bytes.Equal(cl, v) {
				return nil, 0, errorf(http.StatusBadRequest, "bad_header", "header.Content-Length", "conflicting Content-Length fields")
			}
			cl = v
			if _, dup := req.Header[name]; dup {
				continue
			}
		}
		vs := req.Header[name]
		if vs == nil {
			// One array for the fields' first values.
			vals = append(vals, p.intern(name, v))
			vs = vals[len(vals)-1 : len(vals) : len(vals)]
		} else {
			vs = append(vs, string(v))
		}
		req.Header[name] = vs
	}
	p.vals = vals
	if err := req.semantics(cl, lim); err != nil {
		return nil, 0, err
	}
	head := skip + off
	total := head + req.ContentLength
	if len(buf) < total {
		return req, total, ErrIncomplete
	}
	req.Body = buf[head:total:total]
	return req, total, nil
}

// parseLine parses "METHOD TARGET HTTP/1.x".
func (req *Request) parseLine(line []byte, p *Parser) error {
	m, rest, ok1 := bytes.Cut(line, []byte(" "))
	target, proto, ok2 := bytes.Cut(rest, []byte(" "))
	if !ok1 || !ok2 || len(m) == 0 || len(target) == 0 || !isToken(m) {
		return errorf(http.StatusBadRequest, "bad_request", "", "malformed request line %q", clip(line))
	}
	switch string(proto) {
	case "HTTP/1.1":
		req.Minor = 1
	case "HTTP/1.0":
	default:
		if bytes.HasPrefix(proto, []byte("HTTP/")) {
			return errorf(http.StatusHTTPVersionNotSupported, "bad_version", "", "protocol %q not supported (HTTP/1.1 or 1.0)", clip(proto))
		}
		return errorf(http.StatusBadRequest, "bad_request", "", "malformed request line %q", clip(line))
	}
	for _, c := range target {
		if c <= ' ' || c == 0x7f {
			return errorf(http.StatusBadRequest, "bad_request", "", "control character or space in the request target")
		}
	}
	req.Method = method(m)
	if p.url != nil && p.target == string(target) {
		// The URL is shared with earlier requests: read only.
		req.Target, req.URL = p.target, p.url
		return nil
	}
	req.Target = string(target)
	u, err := url.ParseRequestURI(req.Target)
	if err != nil {
		return errorf(http.StatusBadRequest, "bad_request", "", "request target %q is not a URI", clip(target))
	}
	req.URL = u
	p.target, p.url = req.Target, u
	return nil
}

// semantics applies the fields that frame the request: Host,
// Content-Length, Transfer-Encoding, Connection, Expect.
func (req *Request) semantics(cl []byte, lim Limits) error {
	h := req.Header
	hosts := h["Host"]
	if len(hosts) > 1 || req.Minor == 1 && len(hosts) == 0 {
		return errorf(http.StatusBadRequest, "bad_header", "header.Host", "an HTTP/1.1 request needs one Host field")
	}
	if len(hosts) == 1 {
		req.Host = hosts[0]
	}
	if _, ok := h["Transfer-Encoding"]; ok {
		return errorf(http.StatusNotImplemented, "unsupported_transfer_encoding", "header.Transfer-Encoding", "Transfer-Encoding is not supported: send the body with a Content-Length")
	}
	if cl != nil {
		v, err := strconv.ParseUint(string(cl), 10, 63)
		if err != nil {
			return errorf(http.StatusBadRequest, "bad_header", "header.Content-Length", "Content-Length %q is not a length", clip(cl))
		}
		if v > uint64(lim.MaxBody) {
			return errorf(http.StatusRequestEntityTooLarge, "too_large", "body", "body of %d bytes is over the limit of %d", v, lim.MaxBody)
		}
		req.ContentLength = int(v)
	}
	for _, v := range h["Connection"] {
		for _, tok := range bytes.Split([]byte(v), []byte(",")) {
			switch string(bytes.ToLower(trimOWS(tok))) {
			case "close":
				req.Close = true
			case "keep-alive":
				req.KeepAlive10 = req.Minor == 0
			}
		}
	}
	if req.Minor == 0 && !req.KeepAlive10 {
		req.Close = true
	}
	if e, ok := h["Expect"]; ok {
		if len(e) != 1 || !equalFold(e[0], "100-continue") {
			return errorf(http.StatusExpectationFailed, "bad_expect", "header.Expect", "only Expect: 100-continue is supported")
		}
		req.Expect100 = req.Minor == 1 && req.ContentLength > 0
	}
	return nil
}

func equalFold(a, b string) bool { return bytes.EqualFold([]byte(a), []byte(b)) }

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// clip shortens what an error message quotes.
func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// validValue reports whether a field value has no control character but
// horizontal tab (RFC 9110 5.5; obs-text is allowed).
func validValue(v []byte) bool {
	for _, c := range v {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// isToken reports whether b is an RFC 9110 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c >= 0x80 || !tokenChar[c] {
			return false
		}
	}
	return true
}

var tokenChar = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// The common names without an allocation.
var (
	commonMethods = []string{"GET", "PUT", "HEAD", "POST", "DELETE", "OPTIONS"}
	commonFields  = []string{"Host", "Authorization", "Accept", "Content-Length", "Content-Type", "User-Agent", "Connection", "Origin", "Accept-Encoding", "Expect"}
)

func method(b []byte) string {
	for _, m := range commonMethods {
		if string(b) == m {
			return m
		}
	}
	return string(b)
}

// canonical is textproto's canonical form of a field name.
func canonical(b []byte) string {
	for _, f := range commonFields {
		if string(b) == f {
			return f
		}
	}
	return textproto.CanonicalMIMEHeaderKey(string(b))
}
