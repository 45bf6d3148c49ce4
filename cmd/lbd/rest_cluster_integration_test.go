//go:build integration

package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A clustered tenant's REST API on three real storage nodes is the same
// store as its memcached port: a value PUT through one node's REST port
// (on the slot's primary or not) is read back byte for byte through the
// REST and memcached ports of the two others, and incr, decr and DELETE
// through any node are seen by all.
func TestClusterRESTThroughEveryNode(t *testing.T) {
	yaml := strings.Replace(kvsCluster, "kvs: {memory: 8MiB, replicas: 1}", "kvs: {memory: 8MiB, replicas: 1}\n    rest: {port: 13311}", 1)
	nodes := [][2]string{{"st1", "10.99.0.11"}, {"st2", "10.99.0.12"}, {"st3", "10.99.0.13"}}
	l := newClusterLab(t, yaml, nodes)
	l.host("cl", "10.99.0.10")
	var names, mcAddrs, restAddrs []string
	for _, n := range nodes {
		l.startNode(n[0])
		names = append(names, n[0])
		mcAddrs = append(mcAddrs, n[1]+":13111")
		restAddrs = append(restAddrs, n[1]+":13311")
	}
	l.leader(names...)
	eventually(t, 60*time.Second, "the tenant served through every node", func() bool {
		_, err := l.kvsClient("cl", "rw", "warm", 12, mcAddrs)
		return err == nil
	})
	// The API tokens are per node (each node's credential store).
	var tokens []string
	for _, n := range names {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cred, err := l.client(n).IssueCredential(ctx, "shop", true)
		cancel()
		if err != nil {
			t.Fatalf("token on %s: %v", n, err)
		}
		tokens = append(tokens, cred.Secret)
	}
	cmd := func(prefix string, n int) string {
		return fmt.Sprintf("KVS rest %s %d %s", prefix, n, strings.Join(tokens, ","))
	}
	var last string
	eventually(t, 30*time.Second, "the REST ports served (fenced) on every node", func() bool {
		out, err := l.nc("cl", strings.Join(restAddrs, ","), cmd("rwarm", 3))
		last = out
		return err == nil && strings.HasPrefix(out, "ok")
	})
	out, err := l.nc("cl", strings.Join(restAddrs, ","), cmd("r", 60))
	if err != nil || !strings.HasPrefix(out, "ok") {
		t.Fatalf("REST through every node: %v\n%s\n(warm-up: %s)", err, out, last)
	}
	t.Logf("REST through every node: %s", strings.TrimSpace(out))
}

// restClusterMain is the client of TestClusterRESTThroughEveryNode, run by
// probe for "KVS rest PREFIX N TOKENS" with the nodes' REST addresses (the
// memcached port is the same address's 13111): for each of N keys, a PUT
// of binary bytes through node k%3's REST port, then a GET through the
// REST port (raw and JSON) and the memcached port of every node; then
// incr, decr and DELETE through different nodes.
func restClusterMain(addrs []string, prefix string, n int, tokens []string) int {
	mc := func(i int) string { h, _, _ := net.SplitHostPort(addrs[i]); return h + ":13111" }
	c := &http.Client{Timeout: 10 * time.Second}
	call := func(i int, method, path, accept string, body []byte) (int, []byte, error) {
		req, err := http.NewRequest(method, "http://"+addrs[i]+path, strings.NewReader(string(body)))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tokens[i])
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	fail := func(format string, args ...any) int {
		fmt.Printf(format+"\n", args...)
		return 0
	}
	for k := range n {
		key := fmt.Sprintf("%s%d", prefix, k)
		val := []byte(fmt.Sprintf("\x00\xff\r\nEND\r\n%s-%d", prefix, k))
		from := k % len(addrs)
		if st, b, err := call(from, "PUT", "/v1/keys/"+key+"?flags=9", "", val); err != nil || st != 200 {
			return fail("PUT %s via %s: %d %s %v", key, addrs[from], st, b, err)
		}
		for i := range addrs {
			if st, b, err := call(i, "GET", "/v1/keys/"+key, "application/octet-stream", nil); err != nil || st != 200 || string(b) != string(val) {
				return fail("REST GET %s via %s (PUT via %s): %d %q %v", key, addrs[i], addrs[from], st, b, err)
			}
			want := `"value":"` + base64.StdEncoding.EncodeToString(val) + `","encoding":"base64","flags":9,`
			if st, b, err := call(i, "GET", "/v1/keys/"+key, "", nil); err != nil || st != 200 || !strings.Contains(string(b), want) {
				return fail("REST GET %s (JSON) via %s: %d %s %v", key, addrs[i], st, b, err)
			}
			wantMC := fmt.Sprintf("VALUE %s 9 %d\r\n%s\r\nEND\r\n", key, len(val), val)
			if got, err := mcGet(mc(i), key, len(val)); err != nil || got != wantMC {
				return fail("memcached get %s via %s (PUT via %s): %q %v", key, mc(i), addrs[from], got, err)
			}
		}
	}
	ctr := prefix + "n"
	if st, b, err := call(0, "PUT", "/v1/keys/"+ctr, "", []byte("41")); err != nil || st != 200 {
		return fail("PUT %s: %d %s %v", ctr, st, b, err)
	}
	if st, b, err := call(1, "POST", "/v1/keys/"+ctr+"/incr", "", nil); err != nil || st != 200 || !strings.Contains(string(b), `"value":42`) {
		return fail("incr via %s: %d %s %v", addrs[1], st, b, err)
	}
	if st, b, err := call(2, "POST", "/v1/keys/"+ctr+"/decr?by=2", "", nil); err != nil || st != 200 || !strings.Contains(string(b), `"value":40`) {
		return fail("decr via %s: %d %s %v", addrs[2], st, b, err)
	}
	if got, err := mcGet(mc(0), ctr, 2); err != nil || got != "VALUE "+ctr+" 0 2\r\n40\r\nEND\r\n" {
		return fail("memcached get %s: %q %v", ctr, got, err)
	}
	if st, b, err := call(2, "DELETE", "/v1/keys/"+ctr, "", nil); err != nil || st != 200 {
		return fail("DELETE via %s: %d %s %v", addrs[2], st, b, err)
	}
	for i := range addrs {
		if st, b, err := call(i, "GET", "/v1/keys/"+ctr, "", nil); err != nil || st != 404 {
			return fail("GET of a deleted key via %s: %d %s %v", addrs[i], st, b, err)
		}
		if got, err := mcGet(mc(i), ctr, 0); err != nil || got != "END\r\n" {
			return fail("memcached get of a deleted key via %s: %q %v", mc(i), got, err)
		}
	}
	fmt.Println("ok")
	return 0
}

// mcGet reads one key over memcached: its whole reply, the data block read
// by length (it may hold "END\r\n").
func mcGet(addr, key string, n int) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "get %s\r\n", key)
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "VALUE ") {
		return line, err
	}
	rest := make([]byte, n+2+5)
	_, err = io.ReadFull(br, rest)
	return line + string(rest), err
}
