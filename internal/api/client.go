package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/lbd-project/lbd/internal/events"
	"github.com/lbd-project/lbd/pkg/config"
	"go.yaml.in/yaml/v3"
)

// Client speaks the control API, over the unix socket or TCP.
type Client struct {
	base  string // scheme://host, no trailing slash
	token string
	hc    *http.Client
	where string // what to call the server in errors

	mu   sync.Mutex
	meta Meta // of the last answer
}

// ClientOption configures a Client.
type ClientOption func(*clientConfig)

type clientConfig struct{ tls *tls.Config }

// WithTLSConfig sets the TLS configuration for https:// servers (e.g. a
// private CA).
func WithTLSConfig(c *tls.Config) ClientOption {
	return func(cc *clientConfig) { cc.tls = c }
}

// NewClient returns a client of the lbd at target: a unix socket path
// (optionally "unix://PATH") or an http:// or https:// URL, which needs
// token.
func NewClient(target, token string, opts ...ClientOption) (*Client, error) {
	var cc clientConfig
	for _, o := range opts {
		o(&cc)
	}
	tr := &http.Transport{TLSClientConfig: cc.tls, ForceAttemptHTTP2: false}
	c := &Client{token: token, hc: &http.Client{Transport: tr}}
	switch {
	case strings.HasPrefix(target, "http://"), strings.HasPrefix(target, "https://"):
		u, err := url.Parse(target)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("api: bad server URL %q", target)
		}
		c.base, c.where = u.Scheme+"://"+u.Host, u.Host
	default:
		path := strings.TrimPrefix(target, "unix://")
		if path == "" {
			return nil, errors.New("api: no socket path")
		}
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		}
		c.base, c.where = "http://lbd", path
	}
	return c, nil
}

// do sends a request and decodes a JSON answer into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, body io.Reader, ctype string, out any) error {
	resp, err := c.send(ctx, method, path, body, ctype)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("api: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// send sends a request and returns a successful response; a failed call
// becomes an *Error, a failed connection wraps ErrUnreachable.
func (c *Client) send(ctx context.Context, method, path string, body io.Reader, ctype string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL of a unix socket means nothing to the caller
		}
		return nil, fmt.Errorf("%w at %s: %w", ErrUnreachable, c.where, err)
	}
	c.noteMeta(resp.Header)
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	e := &Error{}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(data, e) != nil || e.Message == "" {
		e.Message = strings.TrimSpace(string(data))
		if e.Message == "" {
			e.Message = resp.Status
		}
	}
	e.Status = resp.StatusCode
	return nil, e
}

// get fetches path and decodes its JSON answer.
func get[T any](ctx context.Context, c *Client, path string) (T, error) {
	var out T
	err := c.do(ctx, http.MethodGet, path, nil, "", &out)
	return out, err
}

// del deletes the resource at path.
func (c *Client) del(ctx context.Context, path string) error {
	return c.do(ctx, http.MethodDelete, path, nil, "", &OK{})
}

func (c *Client) sendJSON(ctx context.Context, method, path string, in, out any) error {
	data, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("api: encode request: %w", err)
	}
	return c.do(ctx, method, path, bytes.NewReader(data), "application/json", out)
}

func (c *Client) sendYAML(ctx context.Context, method, path string, in, out any) error {
	data, err := yaml.Marshal(in)
	if err != nil {
		return fmt.Errorf("api: encode request: %w", err)
	}
	return c.do(ctx, method, path, bytes.NewReader(data), "application/yaml", out)
}

// postConfig posts a configuration document to /v1/op; file names it in
// lbd's errors.
func (c *Client) postConfig(ctx context.Context, op string, yamlDoc []byte, file string, out any) error {
	return c.do(ctx, http.MethodPost, "/v1/"+op+"?file="+url.QueryEscape(file), bytes.NewReader(yamlDoc), "application/yaml", out)
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	return get[Status](ctx, c, "/v1/status")
}

// Validate asks lbd to check a configuration; file names it in errors.
func (c *Client) Validate(ctx context.Context, yamlDoc []byte, file string) error {
	return c.postConfig(ctx, "validate", yamlDoc, file, &OK{})
}

// Diff tells what applying the configuration would change.
func (c *Client) Diff(ctx context.Context, yamlDoc []byte, file string) (Diff, error) {
	var d Diff
	err := c.postConfig(ctx, "diff", yamlDoc, file, &d)
	return d, err
}

// Apply replaces the desired state with the configuration.
func (c *Client) Apply(ctx context.Context, yamlDoc []byte, file string) (Diff, error) {
	var d Diff
	err := c.postConfig(ctx, "apply", yamlDoc, file, &d)
	return d, err
}

// Reload makes lbd re-read its configuration file.
func (c *Client) Reload(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/reload", nil, "", &OK{})
}

// Services lists the virtual services.
func (c *Client) Services(ctx context.Context) ([]ServiceStatus, error) {
	return get[[]ServiceStatus](ctx, c, "/v1/services")
}

// Service returns one virtual service by name.
func (c *Client) Service(ctx context.Context, name string) (ServiceStatus, error) {
	return get[ServiceStatus](ctx, c, servicePath(name))
}

// AddService adds a plain virtual service.
func (c *Client) AddService(ctx context.Context, vs config.VirtualService) error {
	return c.sendYAML(ctx, http.MethodPost, "/v1/services", vs, &OK{})
}

// DeleteService removes a virtual service by name ("tcp/VIP:PORT").
func (c *Client) DeleteService(ctx context.Context, name string) error {
	return c.del(ctx, servicePath(name))
}

// AddReal adds a real server to a service.
func (c *Client) AddReal(ctx context.Context, service string, r config.Real) error {
	return c.sendYAML(ctx, http.MethodPost, servicePath(service)+"/reals", r, &OK{})
}

// DeleteReal removes a real server; addr is ADDR:PORT, or ADDR for the
// service's port.
func (c *Client) DeleteReal(ctx context.Context, service, addr string) error {
	return c.del(ctx, realPath(service, addr))
}

// SetWeight changes a real server's weight; 0 drains it.
func (c *Client) SetWeight(ctx context.Context, service, addr string, weight int) error {
	return c.sendJSON(ctx, http.MethodPut, realPath(service, addr)+"/weight", WeightRequest{Weight: weight}, &OK{})
}

func servicePath(service string) string {
	return "/v1/services/" + url.PathEscape(service)
}

func realPath(service, addr string) string {
	return servicePath(service) + "/reals/" + url.PathEscape(addr)
}

func tenantPath(tenant string) string {
	return "/v1/tenants/" + url.PathEscape(tenant)
}

// Tenants lists the tenants.
func (c *Client) Tenants(ctx context.Context) ([]Tenant, error) {
	return get[[]Tenant](ctx, c, "/v1/tenants")
}

// Tenant returns one tenant.
func (c *Client) Tenant(ctx context.Context, name string) (Tenant, error) {
	return get[Tenant](ctx, c, tenantPath(name))
}

// AddTenant adds a tenant.
func (c *Client) AddTenant(ctx context.Context, t config.Tenant) error {
	return c.sendYAML(ctx, http.MethodPost, "/v1/tenants", t, &OK{})
}

// DeleteTenant removes a tenant.
func (c *Client) DeleteTenant(ctx context.Context, name string) error {
	return c.del(ctx, tenantPath(name))
}

// Allow returns a tenant's allow-list.
func (c *Client) Allow(ctx context.Context, tenant string) ([]netip.Prefix, error) {
	out, err := get[AllowList](ctx, c, tenantPath(tenant)+"/allow")
	return out.Allow, err
}

// ChangeAllow adds, deletes or sets allow-list entries (addresses or
// CIDRs) and returns the new list.
func (c *Client) ChangeAllow(ctx context.Context, tenant string, op AllowOp, entries []string) ([]netip.Prefix, error) {
	return c.ChangeAllowRequest(ctx, tenant, AllowRequest{Op: op, Entries: entries})
}

// ChangeAllowRequest changes a tenant's allow-list as req says (with
// req.AllowAny, entries that admit everybody are accepted).
func (c *Client) ChangeAllowRequest(ctx context.Context, tenant string, req AllowRequest) ([]netip.Prefix, error) {
	if req.Entries == nil {
		req.Entries = []string{}
	}
	var out AllowList
	err := c.sendJSON(ctx, http.MethodPost, tenantPath(tenant)+"/allow", req, &out)
	return out.Allow, err
}

// KVSStats returns per-tenant KVS counters; tenant "" means all.
func (c *Client) KVSStats(ctx context.Context, tenant string) ([]KVSStats, error) {
	path := "/v1/kvs/stats"
	if tenant != "" {
		path += "?tenant=" + url.QueryEscape(tenant)
	}
	return get[[]KVSStats](ctx, c, path)
}

// Events streams events to fn until ctx is done (it returns ctx.Err()), fn
// returns an error (returned as is), or the stream breaks (ErrUnreachable:
// lbd stopped); recent replays the recent events first.
func (c *Client) Events(ctx context.Context, recent bool, fn func(events.Event) error) error {
	resp, err := c.send(ctx, http.MethodGet, "/v1/events?recent="+strconv.FormatBool(recent), nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev events.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("api: events: decode: %w", err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: events: %w", ErrUnreachable, err)
	}
	return fmt.Errorf("%w: lbd closed the event stream", ErrUnreachable)
}

// Metrics returns the Prometheus text exposition.
func (c *Client) Metrics(ctx context.Context) ([]byte, error) {
	resp, err := c.send(ctx, http.MethodGet, "/metrics", nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("api: metrics: %w", err)
	}
	return data, nil
}
