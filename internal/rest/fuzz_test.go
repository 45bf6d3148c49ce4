package rest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/lbd-project/lbd/pkg/kvs"
)

// FuzzRequest feeds raw HTTP requests to the handler: whatever arrives,
// it answers (no panic), and every 4xx answer is a JSON error.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		"GET /v1/keys/k HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\n",
		"PUT /v1/keys/k?flags=1&ttl=2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Length: 1\r\n\r\nx",
		"PUT /v1/keys/k HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"value\":\"v\",\"fl",
		"PUT /v1/keys/k HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Type: application/xml\r\nContent-Length: 24\r\n\r\n<item><value>v</value></",
		"POST /v1/mget HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Length: 14\r\n\r\n{\"keys\":[\"a\"]}",
		"POST /v1/keys/n/incr?by=3 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\n",
		"OPTIONS /v1/keys/k HTTP/1.1\r\nHost: x\r\nOrigin: https://o\r\nAccess-Control-Request-Method: PUT\r\n\r\n",
		"GET /v1/keys?key=a&key=%20 HTTP/1.1\r\nHost: x\r\nAccept: application/xml;q=0.9, application/json;q=0.1\r\nAuthorization: Bearer t\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	tier := kvs.New(nil, kvs.Options{NoEventLoop: true})
	defer tier.Close()
	if err := tier.Apply(context.Background(), []kvs.TenantConfig{{Name: "a", Listen: "127.0.0.1:0", MaxItemSize: 1024}}); err != nil {
		f.Fatal(err)
	}
	b := &backend{tier: tier,
		policy: map[string]Policy{"a": {Allow: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, CORSOrigins: []string{"https://o"}}},
		secret: map[string]string{"a": "t"}}
	h := NewHandler("a", b, Options{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return
		}
		r.RemoteAddr = "192.0.2.1:1234"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 400 && w.Code < 500 {
			ct := w.Header().Get("Content-Type")
			if ct != "application/json" && ct != "application/xml; charset=utf-8" {
				t.Fatalf("%d answer of type %q: %q", w.Code, ct, w.Body.String())
			}
		}
		if w.Code >= 500 {
			t.Fatalf("%d: %s", w.Code, w.Body.String())
		}
	})
}

// FuzzLoopConn feeds raw bytes to the event loop's side of the API, at
// once and in two pieces: it never panics, consumes what it was given at
// most, answers with well-formed HTTP responses, and the same ones (their
// statuses) however the input was cut.
func FuzzLoopConn(f *testing.F) {
	f.Add([]byte("GET /v1/keys/k HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\nPUT /v1/keys/k HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Length: 1\r\n\r\nx"), 30)
	f.Add([]byte("POST /v1/mget HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nExpect: 100-continue\r\nContent-Length: 14\r\n\r\n{\"keys\":[\"a\"]}"), 90)
	f.Add([]byte("GET /v1/keys/k HTTP/1.0\r\n\r\nGET / HTTP/1.1\r\n\r\n"), 5)
	// Two stores that see the same requests: one served whole, one in
	// pieces.
	var hs [2]*Handler
	for i := range hs {
		tier := kvs.New(nil, kvs.Options{NoEventLoop: true})
		defer tier.Close()
		if err := tier.Apply(context.Background(), []kvs.TenantConfig{{Name: "a", Listen: "127.0.0.1:0", MaxItemSize: 1024}}); err != nil {
			f.Fatal(err)
		}
		b := quickBackend{&backend{tier: tier,
			policy: map[string]Policy{"a": {Allow: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, CORSOrigins: []string{"https://o"}}},
			secret: map[string]string{"a": "t"}}}
		hs[i] = NewHandler("a", b, Options{})
	}
	statuses := func(t *testing.T, out []byte) []int {
		var st []int
		br := bufio.NewReader(bytes.NewReader(out))
		for br.Buffered() > 0 || len(st) == 0 && len(out) > 0 {
			resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
			if err != nil {
				t.Fatalf("answer %d: %v in %q", len(st), err, out)
			}
			io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != http.StatusContinue { // sent only when the body is not all in
				st = append(st, resp.StatusCode)
			}
			if _, err := br.Peek(1); err != nil {
				break
			}
		}
		return st
	}
	serve := func(t *testing.T, h *Handler, pieces ...[]byte) []int {
		c := h.Proto().NewConn(netip.MustParseAddrPort("192.0.2.1:1234"))
		var in, out []byte
		for _, p := range pieces {
			in = append(in, p...)
			st := c.Serve(in, out)
			if st.N < 0 || st.N > len(in) || st.Slow != nil {
				t.Fatalf("step %+v for %d bytes", st, len(in))
			}
			out, in = st.Out, in[st.N:]
			if st.Close {
				break
			}
		}
		return statuses(t, out)
	}
	f.Fuzz(func(t *testing.T, raw []byte, cut int) {
		if strings.Contains(string(raw), "HEAD") {
			return // the answer's framing needs the request
		}
		whole := serve(t, hs[0], raw)
		cut = min(max(cut, 0), len(raw))
		if pieces := serve(t, hs[1], raw[:cut], raw[cut:]); fmt.Sprint(pieces) != fmt.Sprint(whole) {
			t.Fatalf("cut at %d: %v, at once %v", cut, pieces, whole)
		}
	})
}
