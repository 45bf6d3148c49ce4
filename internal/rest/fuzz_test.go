package rest

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
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
