package rest

import (
	"context"
	"net/netip"
	"testing"

	"github.com/lbd-project/lbd/pkg/kvs"
)

// BenchmarkLoopGet is the event loop's part of a single-key REST GET:
// parse, run the handler in place, write the answer.
func BenchmarkLoopGet(b *testing.B) {
	tier := kvs.New(nil, kvs.Options{NoEventLoop: true})
	defer tier.Close()
	if err := tier.Apply(context.Background(), []kvs.TenantConfig{{Name: "a", Listen: "127.0.0.1:0"}}); err != nil {
		b.Fatal(err)
	}
	l, _ := tier.Local("a")
	l.Set([]byte("key:1"), make([]byte, 64), 0, 0)
	be := &backend{tier: tier, policy: map[string]Policy{"a": {Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}, secret: map[string]string{"a": secret}}
	for _, accept := range []string{"application/octet-stream", "application/json"} {
		b.Run(accept, func(b *testing.B) {
			c := NewHandler("a", quickBackend{be}, Options{}).Proto().NewConn(netip.MustParseAddrPort("127.0.0.1:5000"))
			req := []byte("GET /v1/keys/key:1 HTTP/1.1\r\nHost: 127.0.0.1:11311\r\nAuthorization: Bearer " + secret + "\r\nAccept: " + accept + "\r\n\r\n")
			out := make([]byte, 0, 4096)
			b.ReportAllocs()
			for b.Loop() {
				st := c.Serve(req, out[:0])
				if st.N != len(req) || len(st.Out) == 0 {
					b.Fatalf("%+v", st)
				}
			}
		})
	}
}
