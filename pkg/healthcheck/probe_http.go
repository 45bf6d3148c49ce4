package healthcheck

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
)

// maxDigestBody bounds how much of a body is read to compute its digest.
const maxDigestBody = 4 << 20

// probeHTTP sends a GET for spec.Path to addr and checks the status code
// and, if spec.Digest is set, the MD5 of the body (keepalived HTTP_GET;
// SSL_GET with spec.TLS, certificate not verified, as in keepalived).
func probeHTTP(ctx context.Context, d Dialer, addr string, spec HTTPSpec) error {
	scheme := "http"
	if spec.TLS {
		scheme = "https"
	}
	path := spec.Path
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	url := scheme + "://" + addr + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: http %s: %w", url, err)
	}
	req.Header.Set("User-Agent", "lbd-healthcheck")
	serverName := ""
	if spec.Host != "" {
		req.Host = spec.Host
		serverName, _, err = net.SplitHostPort(spec.Host)
		if err != nil {
			serverName = spec.Host
		}
	}
	// One connection per check: a kept-alive connection would hide a
	// server that no longer accepts new ones.
	tr := &http.Transport{
		DialContext:       d.DialContext,
		DisableKeepAlives: true,
		Proxy:             nil,
		TLSClientConfig: &tls.Config{
			InsecureSkipVerify: true, //nolint:gosec // a health check, like keepalived's SSL_GET
			ServerName:         serverName,
		},
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, CheckRedirect: noRedirect}).Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: http get %s: %w", url, err)
	}
	defer resp.Body.Close()
	if !statusOK(resp.StatusCode, spec.StatusCodes) {
		return fmt.Errorf("healthcheck: http get %s: status %d", url, resp.StatusCode)
	}
	if spec.Digest == "" {
		return nil
	}
	h := md5.New()
	if _, err := io.Copy(h, io.LimitReader(resp.Body, maxDigestBody)); err != nil {
		return fmt.Errorf("healthcheck: http get %s: read body: %w", url, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, spec.Digest) {
		return fmt.Errorf("healthcheck: http get %s: digest %s, want %s", url, got, strings.ToLower(spec.Digest))
	}
	return nil
}

// noRedirect makes a redirect a status to judge, as keepalived does.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func statusOK(code int, want []int) bool {
	if len(want) == 0 {
		return code >= 200 && code <= 299
	}
	return slices.Contains(want, code)
}
