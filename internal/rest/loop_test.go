package rest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// corpus is a session of raw requests, run in order on one connection.
var corpus = []string{
	"GET /v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /v1/keys/k HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /v1/keys/k HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\n\r\n",
	"GET /v1/keys/k HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\n\r\n",
	"PUT /v1/keys/k?flags=7&ttl=2000000000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nContent-Length: ?\r\n\r\nhello",
	"GET /v1/keys/k HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\n\r\n",
	"GET /v1/keys/k HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nAccept: application/octet-stream\r\n\r\n",
	"HEAD /v1/keys/k HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nAccept: application/octet-stream\r\n\r\n",
	"HEAD /v1/keys/k HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\n\r\n",
	"GET /v1/keys/k HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nAccept: application/xml\r\n\r\n",
	"GET /v1/keys/k HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + basic("a", secret) + "\r\nAccept: text/html, application/xml;q=0.9\r\n\r\n",
	"PUT /v1/keys/j HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nContent-Type: application/json\r\nContent-Length: ?\r\n\r\n{\"value\":\"AAEC/w==\",\"encoding\":\"base64\"}",
	"GET /v1/keys/j HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\n\r\n",
	"PUT /v1/keys/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nContent-Type: application/xml\r\nContent-Length: ?\r\n\r\n<item><value>un &amp; deux</value><flags>3</flags></item>",
	"GET /v1/keys?key=k&key=j&key=nope&key=x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\n\r\n",
	"POST /v1/mget HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nAccept: application/xml\r\nContent-Length: ?\r\n\r\n{\"keys\":[\"k\",\"absent\"]}",
	"POST /v1/mget HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nContent-Length: ?\r\n\r\n{\"keys\":[\"k\",\"absent\"]",
	"PUT /v1/keys/n HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nContent-Length: ?\r\n\r\n41",
	"POST /v1/keys/n/incr HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\n\r\n",
	"POST /v1/keys/n/decr?by=100 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\n\r\n",
	"POST /v1/keys/n/incr HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nContent-Length: ?\r\n\r\n{\"by\": 5}\n",
	"POST /v1/keys/k/incr HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\n\r\n",
	"DELETE /v1/keys/n HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\n\r\n",
	"DELETE /v1/keys/n HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nAccept: application/xml\r\n\r\n",
	"GET /v1/keys/a%20b HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\n\r\n",
	"GET /v1/keys/" + strings.Repeat("z", 251) + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\n\r\n",
	"PUT /v1/keys/big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nContent-Length: ?\r\n\r\n" + strings.Repeat("b", 5000),
	"OPTIONS /v1/keys/k HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: PUT\r\n\r\n",
	"OPTIONS /v1/keys/k HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\nAccess-Control-Request-Method: PUT\r\n\r\n",
	"OPTIONS /v1/keys/k HTTP/1.1\r\nHost: x\r\nAccess-Control-Request-Method: PUT\r\n\r\n",
	"GET /v1/keys/k HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\nAuthorization: Bearer " + secret + "\r\n\r\n",
	"GET /v2/nothing HTTP/1.1\r\nHost: x\r\n\r\n",
	"PATCH /v1/keys/k HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /v1/keys/../keys/k HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /v1/keys/k HTTP/1.0\r\nConnection: keep-alive\r\nAuthorization: Bearer " + secret + "\r\n\r\n",
	"GET /v1/keys/k HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nConnection: close\r\n\r\n",
}

// The corpus's Content-Length fields, "?" above, are the bodies' lengths.
func init() {
	for i, q := range corpus {
		head, body, _ := strings.Cut(q, "\r\n\r\n")
		corpus[i] = strings.Replace(head, "Content-Length: ?", "Content-Length: "+strconv.Itoa(len(body)), 1) + "\r\n\r\n" + body
	}
}

func basic(user, pass string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, pass)
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

// readAnswer reads one raw answer (its head and its Content-Length body;
// none for HEAD, 1xx, 204 and 304).
func readAnswer(br *bufio.Reader, head bool) (string, error) {
	var b strings.Builder
	clen := 0
	status := 0
	for {
		line, err := br.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			return b.String(), err
		}
		if status == 0 {
			f := strings.Fields(line)
			if len(f) > 1 {
				status, _ = strconv.Atoi(f[1])
			}
		}
		if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
			clen, _ = strconv.Atoi(strings.TrimSpace(v))
		}
		if line == "\r\n" {
			break
		}
	}
	if head || status < 200 || status == 204 || status == 304 {
		return b.String(), nil
	}
	body := make([]byte, clen)
	_, err := io.ReadFull(br, body)
	b.Write(body)
	return b.String(), err
}

var dateField = regexp.MustCompile(`(?m)^Date: .*\r\n`)

// play runs the corpus on one connection to url, one request at a time or
// all pipelined in one write, and returns the answers, Date fields cut.
func play(t *testing.T, url string, pipelined bool) []string {
	t.Helper()
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	var out []string
	if pipelined {
		var all bytes.Buffer
		for _, q := range corpus {
			all.WriteString(q)
		}
		go c.Write(all.Bytes())
	}
	for _, q := range corpus {
		if !pipelined {
			if _, err := io.WriteString(c, q); err != nil {
				t.Fatalf("request %d %q: %v (answers so far: %q)", len(out), q, err, out)
			}
		}
		a, err := readAnswer(br, strings.HasPrefix(q, "HEAD "))
		if err != nil {
			t.Fatalf("answer to %q: %v (%q)", q, err, a)
		}
		out = append(out, dateField.ReplaceAllString(a, "Date: -\r\n"))
	}
	return out
}

// TestLoopAnswersAsNetHTTP: the event-loop server answers a corpus of
// requests (reads, writes, JSON, XML, raw bytes, errors, CORS, HTTP/1.0)
// byte for byte as the net/http server does, the Date field aside, one by
// one and pipelined.
func TestLoopAnswersAsNetHTTP(t *testing.T) {
	for _, pipelined := range []bool{false, true} {
		var want []string
		for _, kind := range serverKinds {
			_, srv, _ := setup(t, kind)
			got := play(t, srv.URL, pipelined)
			if want == nil {
				want = got
				ok := 0
				for _, a := range got {
					if strings.HasPrefix(a, "HTTP/1.1 200 OK\r\n") {
						ok++
					}
				}
				if ok < 15 {
					t.Fatalf("only %d answers are 200 OK: %q", ok, got)
				}
				continue
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("pipelined %v, %s, request %d %q:\n got %q\nwant %q", pipelined, kind, i, corpus[i], got[i], want[i])
				}
			}
		}
	}
}

// TestLoopRefusesBadRequests: what the parser refuses gets a JSON error
// with the status net/http would give, and the connection closes.
func TestLoopRefusesBadRequests(t *testing.T) {
	_, srv, _ := setup(t, "loop")
	for _, tc := range []struct {
		name, req string
		status    int
		code      string
	}{
		{"malformed line", "GET /\r\n\r\n", 400, "bad_request"},
		{"no host", "GET /v1/openapi.json HTTP/1.1\r\n\r\n", 400, "bad_header"},
		{"version", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "bad_version"},
		{"chunked", "PUT /v1/keys/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n", 501, "unsupported_transfer_encoding"},
		{"two lengths", "PUT /v1/keys/k HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: ?\r\n\r\nab", 400, "bad_header"},
		{"long line", "GET /" + strings.Repeat("a", 9000) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"},
		{"big header", "GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-A: "+strings.Repeat("a", 1000)+"\r\n", 70) + "\r\n", 431, "header_too_large"},
		{"big body", "PUT /v1/keys/k HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", 413, "too_large"},
		{"control char", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", 400, "bad_header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			go io.WriteString(c, tc.req)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(body), `"code":"`+tc.code+`"`) || !resp.Close {
				t.Errorf("got %d close %v %s, want %d %s", resp.StatusCode, resp.Close, body, tc.status, tc.code)
			}
			if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
				t.Errorf("connection still open after the refusal: %d %v", n, err)
			}
		})
	}
}

// TestLoopExpectContinue: a client that waits for "100 Continue" gets it,
// then its answer; a body sent in pieces is waited for.
func TestLoopExpectContinue(t *testing.T) {
	_, srv, _ := setup(t, "loop")
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "PUT /v1/keys/e HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nExpect: 100-continue\r\nContent-Length: 6\r\n\r\n", secret)
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("%q %v", line, err)
	}
	br.ReadString('\n')
	io.WriteString(c, "abc")
	time.Sleep(10 * time.Millisecond) // the rest in another segment
	io.WriteString(c, "def")
	a, err := readAnswer(br, false)
	if err != nil || !strings.HasPrefix(a, "HTTP/1.1 200 OK\r\n") || !strings.Contains(a, `"value":"abcdef"`) {
		t.Fatalf("%q %v", a, err)
	}
}

// TestLoopSlowReader: a client that pipelines more than its socket holds
// before reading gets every answer, in order (the loop hands the
// connection to a goroutine that may block on writes).
func TestLoopSlowReader(t *testing.T) {
	_, srv, _ := setup(t, "loop")
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(64 << 10)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	const n = 1500 // about 9 MB of answers, more than the sockets hold
	go func() {
		var b bytes.Buffer
		for i := range n {
			fmt.Fprintf(&b, "GET /v1/openapi.json?i=%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
		}
		c.Write(b.Bytes())
	}()
	time.Sleep(200 * time.Millisecond) // let the answers pile up
	br := bufio.NewReader(c)
	for i := range n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 || len(body) != len(openAPIDoc) {
			t.Fatalf("answer %d: %d, %d bytes, %v", i, resp.StatusCode, len(body), err)
		}
	}
}
