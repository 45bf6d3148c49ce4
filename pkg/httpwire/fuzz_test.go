package httpwire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
)

// FuzzParse: Parse never panics; what it accepts, net/http's own parser
// reads the same (method, target, host, body); a prefix of an accepted
// request is incomplete, never another request or an error.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"GET /v1/keys/a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\n",
		"PUT /v1/keys/a?ttl=5 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
		"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"POST /v1/mget HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 14\r\nExpect: 100-continue\r\n\r\n{\"keys\":[\"a\"]}",
		"GET / HTTP/1.1\nHost: y\n\n",
		"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET / HTTP/2.0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
	} {
		f.Add([]byte(s))
	}
	lim := Limits{MaxLine: 256, MaxHeader: 1024, MaxFields: 16, MaxBody: 512}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, n, err := Parse(b, lim)
		var pe *Error
		switch {
		case errors.Is(err, ErrIncomplete):
			if n != 0 && n <= len(b) {
				t.Fatalf("incomplete with %d of %d bytes", n, len(b))
			}
			return
		case errors.As(err, &pe):
			if pe.Status < 400 || pe.Status > 599 || pe.Code == "" {
				t.Fatalf("bad error %+v", pe)
			}
			return
		case err != nil:
			t.Fatalf("error %v", err)
		}
		if n <= 0 || n > len(b) || len(req.Body) != req.ContentLength {
			t.Fatalf("n %d of %d, body %d of %d", n, len(b), len(req.Body), req.ContentLength)
		}
		// A Parser reusing a recycled request reads the same.
		p := Parser{Limits: lim}
		first, _, _ := p.Parse(b)
		p.Recycle(first)
		again, m, err := p.Parse(b)
		if err != nil || m != n || again.Method != req.Method || again.Target != req.Target || fmt.Sprint(again.Header) != fmt.Sprint(req.Header) || !bytes.Equal(again.Body, req.Body) {
			t.Fatalf("reparse: %v %d %+v, want %+v", err, m, again, req)
		}
		for k := range n {
			if _, _, err := Parse(b[:k], lim); !errors.Is(err, ErrIncomplete) {
				t.Fatalf("prefix of %d bytes: %v", k, err)
			}
		}
		hr, herr := http.ReadRequest(bufio.NewReader(bytes.NewReader(b[:n])))
		if herr != nil {
			t.Fatalf("accepted %q, net/http refuses: %v", b[:n], herr)
		}
		body, _ := io.ReadAll(hr.Body)
		if hr.Method != req.Method || hr.RequestURI != req.Target || hr.Host != req.Host || !bytes.Equal(body, req.Body) || hr.Close != req.Close {
			t.Fatalf("%q: net/http reads %s %s host %q close %v body %q; we %s %s host %q close %v body %q", b[:n],
				hr.Method, hr.RequestURI, hr.Host, hr.Close, body, req.Method, req.Target, req.Host, req.Close, req.Body)
		}
		for k, v := range req.Header {
			if k == "Host" {
				continue
			}
			if hv := hr.Header[k]; len(hv) != len(v) {
				t.Fatalf("%q: header %s: net/http %q, we %q", b[:n], k, hv, v)
			}
		}
	})
}

// FuzzAppendFields: the fields are written byte for byte as
// http.Header.Write writes them.
func FuzzAppendFields(f *testing.F) {
	f.Add("Content-Type", "application/json", "X-Lbd-Flags", "7\r\n8 ")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		h := http.Header{}
		h.Add(k1, v1)
		h.Add(k2, v2)
		h.Add(k1, v2)
		var want bytes.Buffer
		h.Write(&want)
		if got := appendFields(nil, h, nil); string(got) != want.String() {
			t.Fatalf("got %q, want %q", got, want.String())
		}
	})
}
