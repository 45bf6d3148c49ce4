package rest

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"net/url"

	"github.com/lbd-project/lbd/pkg/httpwire"
	"github.com/lbd-project/lbd/pkg/kvs"
)

// Quick is implemented by a Backend that can tell, before a request runs,
// whether serving it may block (a store on other nodes, a secret not yet
// verified and so to hash with argon2id). Such a request runs on a
// goroutine; the others run in place on the KVS event loop that read it.
// Without Quick, every request runs on a goroutine.
type Quick interface {
	// Quick reports whether tenant's requests carrying secret ("" if
	// none) run without blocking: Store and Authenticate return at once.
	Quick(tenant, secret string) bool
}

// Proto returns the API as a protocol of the KVS event loops
// (kvs.Tier.ServeProto): requests are parsed from the connection's buffer
// (pkg/httpwire), run by the same handler as ServeHTTP with its answer
// recorded, and written back as net/http writes them.
func (h *Handler) Proto() kvs.Proto { return loopProto{h} }

type loopProto struct{ h *Handler }

// NewConn implements kvs.Proto.
func (p loopProto) NewConn(remote netip.AddrPort) kvs.ProtoConn {
	lim := httpwire.DefaultLimits
	lim.MaxBody = maxKeysPerGet*(kvs.KeyMaxLength+8) + 1024
	if kv, ok := p.h.b.Store(p.h.tenant); ok {
		lim.MaxBody = max(lim.MaxBody, int(bodyLimit(kv)))
	}
	q, _ := p.h.b.(Quick)
	return &loopConn{h: p.h, q: q, remote: remote.String(), parser: httpwire.Parser{Limits: lim}, rec: httpwire.NewResponse()}
}

// loopConn is one connection's state.
type loopConn struct {
	h      *Handler
	q      Quick
	remote string
	parser httpwire.Parser
	// rec and hr are reused by the requests run in place.
	rec *httpwire.Response
	hr  http.Request
	// continued: "100 Continue" went out for the request being read.
	continued bool
}

// Serve implements kvs.ProtoConn.
func (c *loopConn) Serve(in, out []byte) kvs.Step {
	n := 0
	for n < len(in) {
		req, m, err := c.parser.Parse(in[n:])
		if errors.Is(err, httpwire.ErrIncomplete) {
			st := kvs.Step{N: n}
			if m > 0 {
				st.Want = m
				if req.Expect100 && !c.continued {
					out = append(out, httpwire.Continue...)
					c.continued = true
				}
				c.parser.Recycle(req)
			}
			st.Out = out
			return st
		}
		var pe *httpwire.Error
		if errors.As(err, &pe) {
			return kvs.Step{Out: c.refuse(out, pe), N: len(in), Close: true}
		}
		n += m
		c.continued = false
		if !c.quick(req) {
			req.Body = bytes.Clone(req.Body) // in is the loop's buffer
			return kvs.Step{Out: out, N: n, Slow: func() ([]byte, bool) {
				return c.run(nil, req, httpwire.NewResponse(), &http.Request{})
			}}
		}
		var closing bool
		out, closing = c.run(out, req, c.rec, &c.hr)
		c.parser.Recycle(req)
		if closing {
			return kvs.Step{Out: out, N: len(in), Close: true}
		}
	}
	return kvs.Step{Out: out, N: n}
}

// quick reports whether req may run on the loop.
func (c *loopConn) quick(req *httpwire.Request) bool {
	if c.q == nil {
		return false
	}
	c.hr = http.Request{Header: req.Header}
	secret, _ := credential(&c.hr, c.h.tenant)
	return c.q.Quick(c.h.tenant, secret)
}

// run serves req with the handler, recording into rec with hr as the
// request, and appends its answer to out; closing reports that the
// connection closes after it.
func (c *loopConn) run(out []byte, req *httpwire.Request, rec *httpwire.Response, hr *http.Request) (res []byte, closing bool) {
	defer func() {
		// ServeHTTP recovers every panic but http.ErrAbortHandler, which
		// aborts the answer: as net/http, close without one.
		if v := recover(); v != nil {
			res, closing = out, true
		}
	}()
	*hr = http.Request{
		Method: req.Method, URL: req.URL, RequestURI: req.Target, Host: req.Host,
		Proto: req.Proto(), ProtoMajor: 1, ProtoMinor: req.Minor,
		Header: req.Header, ContentLength: int64(req.ContentLength), Body: http.NoBody,
		RemoteAddr: c.remote, Close: req.Close,
	}
	if req.URL.Host != "" {
		hr.Host = req.URL.Host // absolute-form, as net/http
	}
	if req.ContentLength > 0 {
		hr.Body = io.NopCloser(bytes.NewReader(req.Body))
	}
	rec.Reset()
	c.h.ServeHTTP(rec, hr)
	return rec.Append(out, req, false)
}

// refuse answers a request the parser refused, in JSON, and closes.
func (c *loopConn) refuse(out []byte, pe *httpwire.Error) []byte {
	rec := httpwire.NewResponse()
	hr := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/"}, Header: http.Header{}}
	c.h.write(rec, hr, pe.Status, errorBody{&apiError{Status: pe.Status, Code: pe.Code, Field: pe.Field, Message: pe.Message}})
	out, _ = rec.Append(out, nil, true)
	return out
}
