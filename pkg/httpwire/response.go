package httpwire

import (
	"bytes"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Response is a handler's answer as a ResponseWriter records it.
type Response struct {
	header http.Header
	status int
	body   []byte
}

// NewResponse returns an empty response to record into.
func NewResponse() *Response { return &Response{header: make(http.Header, 4)} }

// Reset empties r for the next response, keeping its memory.
func (r *Response) Reset() {
	clear(r.header)
	r.status = 0
	r.body = r.body[:0]
}

// Header implements http.ResponseWriter.
func (r *Response) Header() http.Header { return r.header }

// WriteHeader implements http.ResponseWriter; the first call counts.
func (r *Response) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

// Write implements http.ResponseWriter.
func (r *Response) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	r.body = append(r.body, p...)
	return len(p), nil
}

// Status is the recorded status (200 if the handler set none).
func (r *Response) Status() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// Body is the recorded body.
func (r *Response) Body() []byte { return r.body }

// Append writes r to dst as net/http's server writes a response to req
// whose handler set Content-Length or wrote nothing (what httpwire's users
// do), and reports whether the connection closes after it. closing forces
// "Connection: close" (the server closes, say after a refused request).
func (r *Response) Append(dst []byte, req *Request, closing bool) ([]byte, bool) {
	h := r.header
	status := r.Status()
	isHEAD := req != nil && req.Method == http.MethodHead
	bodyOK := bodyAllowed(status)
	var clen []byte
	if bodyOK && !has(h, "Content-Length") && (!isHEAD || len(r.body) > 0) {
		clen = strconv.AppendInt(nil, int64(len(r.body)), 10)
	}
	hasCL := clen != nil || has(h, "Content-Length")
	minor := 1
	if req != nil {
		minor = req.Minor
	}
	closeAfter := closing || req == nil
	var conn string
	switch {
	case req != nil && req.KeepAlive10 && (isHEAD || hasCL || !bodyOK):
		if _, ok := h["Connection"]; !ok {
			conn = "keep-alive"
		}
	case req != nil && (minor == 0 || req.Close):
		closeAfter = true
	}
	if req != nil && req.KeepAlive10 && !(isHEAD || hasCL || !bodyOK) {
		closeAfter = true
	}
	if h.Get("Connection") == "close" {
		closeAfter = true
	}
	var ctype string
	if bodyOK {
		if _, ok := h["Content-Type"]; !ok && len(r.body) > 0 {
			ctype = http.DetectContentType(r.body)
		}
	}
	exclude := map[string]bool(nil)
	if !bodyOK {
		exclude = map[string]bool{"Content-Type": true, "Content-Length": true, "Transfer-Encoding": true}
	}
	if closeAfter && !hasToken(h.Get("Connection"), "close") {
		if _, ok := h["Connection"]; ok {
			exclude = mergeExclude(exclude, "Connection")
		}
		conn = ""
		if minor == 1 {
			conn = "close"
		}
	}
	dst = append(dst, "HTTP/1."...)
	dst = append(dst, byte('0'+minor), ' ')
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, http.StatusText(status)...)
	dst = append(dst, "\r\n"...)
	dst = appendFields(dst, h, exclude)
	if !has(h, "Date") {
		dst = append(dst, "Date: "...)
		dst = appendDate(dst)
		dst = append(dst, "\r\n"...)
	}
	if clen != nil {
		dst = append(append(append(dst, "Content-Length: "...), clen...), "\r\n"...)
	}
	if ctype != "" {
		dst = append(append(append(dst, "Content-Type: "...), ctype...), "\r\n"...)
	}
	if conn != "" {
		dst = append(append(append(dst, "Connection: "...), conn...), "\r\n"...)
	}
	dst = append(dst, "\r\n"...)
	if bodyOK && !isHEAD {
		dst = append(dst, r.body...)
	}
	return dst, closeAfter
}

// appendFields appends h's fields but those in exclude as
// http.Header.WriteSubset writes them: sorted by name, each value on a
// line of its own, newlines turned to spaces and trimmed.
func appendFields(dst []byte, h http.Header, exclude map[string]bool) []byte {
	var arr [16]string
	keys := arr[:0]
	for k := range h {
		if !exclude[k] && validName(k) { // as WriteSubset, which drops the others
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			if strings.ContainsAny(v, "\r\n") {
				v = strings.NewReplacer("\n", " ", "\r", " ").Replace(v)
			}
			v = textproto.TrimString(v)
			dst = append(dst, k...)
			dst = append(dst, ": "...)
			dst = append(dst, v...)
			dst = append(dst, "\r\n"...)
		}
	}
	return dst
}

// validName reports whether k is a token (httpguts.ValidHeaderFieldName).
func validName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c >= 0x80 || !tokenChar[c] {
			return false
		}
	}
	return true
}

// Continue is the interim answer to "Expect: 100-continue".
const Continue = "HTTP/1.1 100 Continue\r\n\r\n"

func mergeExclude(m map[string]bool, k string) map[string]bool {
	if m == nil {
		m = map[string]bool{}
	}
	m[k] = true
	return m
}

func has(h http.Header, k string) bool {
	v, ok := h[k]
	return ok && len(v) > 0 && v[0] != ""
}

// hasToken reports whether the comma-separated list v holds token (any
// case).
func hasToken(v, token string) bool {
	for _, t := range bytes.Split([]byte(v), []byte(",")) {
		if bytes.EqualFold(trimOWS(t), []byte(token)) {
			return true
		}
	}
	return false
}

// bodyAllowed is net/http's bodyAllowedForStatus.
func bodyAllowed(status int) bool {
	switch {
	case status >= 100 && status <= 199:
		return false
	case status == 204, status == 304:
		return false
	}
	return true
}

// date caches the Date field's value for the current second.
var date atomic.Pointer[dateCache]

type dateCache struct {
	sec int64
	b   []byte
}

// appendDate appends the current time as http.TimeFormat.
func appendDate(dst []byte) []byte {
	now := time.Now()
	d := date.Load()
	if d == nil || d.sec != now.Unix() {
		d = &dateCache{sec: now.Unix(), b: now.UTC().AppendFormat(nil, http.TimeFormat)}
		date.Store(d)
	}
	return append(dst, d.b...)
}
