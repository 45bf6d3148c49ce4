package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/internal/credential"
	"github.com/lbd-project/lbd/internal/rest"
	"github.com/lbd-project/lbd/internal/statefile"
	"github.com/lbd-project/lbd/pkg/acl"
	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/kvs"
)

// restRunner serves the tenants' REST data APIs on a storage node, each
// on its tenant's REST port on every address, as the memcached ports.
// The servers run on the KVS tier's event loops (rest.Handler.Proto), or
// on net/http where there is no tier.
type restRunner struct {
	log     *slog.Logger
	backend rest.Backend
	tier    *kvs.Tier
	servers map[string]*restServer // by tenant
}

type restServer struct {
	port int
	ps   *kvs.ProtoServer
	srv  *http.Server
	done chan struct{}
}

// restIdleTimeout closes a REST connection that sent nothing for that long.
const restIdleTimeout = 2 * time.Minute

func newRESTRunner(log *slog.Logger, b rest.Backend, tier *kvs.Tier) *restRunner {
	return &restRunner{log: log, backend: b, tier: tier, servers: map[string]*restServer{}}
}

// apply runs a server for each tenant of want (tenant -> port), stopping
// the others and moving those whose port changed.
func (r *restRunner) apply(ctx context.Context, want map[string]int) error {
	var errs []error
	for name, s := range r.servers {
		if p, ok := want[name]; !ok || p != s.port {
			s.stop()
			delete(r.servers, name)
			r.log.Info("rest api stopped", "tenant", name, "port", s.port)
		}
	}
	for name, port := range want {
		if _, ok := r.servers[name]; ok {
			continue
		}
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", kvsListen(port))
		if err != nil {
			errs = append(errs, fmt.Errorf("rest: tenant %s: %w", name, err))
			continue
		}
		h := rest.NewHandler(name, r.backend, rest.Options{Logger: r.log})
		if r.tier != nil {
			r.servers[name] = &restServer{port: port, ps: r.tier.ServeProto(ln, h.Proto(), kvs.ProtoOptions{IdleTimeout: restIdleTimeout})}
			r.log.Info("rest api serving", "tenant", name, "port", port)
			continue
		}
		s := &restServer{port: port, done: make(chan struct{}), srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       restIdleTimeout,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelDebug),
		}}
		go func() {
			defer close(s.done)
			if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				r.log.Error("rest api stopped", "tenant", name, "error", err)
			}
		}()
		r.servers[name] = s
		r.log.Info("rest api serving", "tenant", name, "port", port)
	}
	return errors.Join(errs...)
}

func (s *restServer) stop() {
	if s.ps != nil {
		s.ps.Close()
		return
	}
	s.srv.Close()
	<-s.done
}

func (r *restRunner) close() {
	for name, s := range r.servers {
		s.stop()
		delete(r.servers, name)
	}
}

// reconcileREST serves the REST APIs of the tenants that have one; with
// storage_acl, only on a port the storage ACL fences (as fencedKVS holds
// back a store).
func (d *Daemon) reconcileREST(ctx context.Context, cfg *config.Config, fence []acl.Tenant) error {
	if d.sub.rest == nil {
		return nil
	}
	want := map[string]int{}
	var held []string
	for _, s := range cfg.Services() {
		if s.Part != config.PartREST {
			continue
		}
		if cfg.Defaults.StorageACLOn() {
			i := slices.IndexFunc(fence, func(f acl.Tenant) bool { return f.Name == s.Fence() })
			have, ok := d.sub.storACL.Tenant(s.Fence())
			if i < 0 || !ok || !sameService(have, fence[i]) {
				held = append(held, s.Tenant)
				continue
			}
		}
		want[s.Tenant] = int(s.Port)
	}
	err := d.sub.rest.apply(ctx, want)
	if len(held) > 0 {
		err = errors.Join(err, fmt.Errorf("rest: tenants %s held back until the storage ACL fences their REST ports", strings.Join(held, ", ")))
	}
	return err
}

// restBackend is the daemon as the REST API sees it.
type restBackend struct{ d *Daemon }

// Store implements rest.Backend: the tenant's store on this node; in a
// cluster, its keys wherever their slots' primaries are (routed as the
// memcached port routes them).
func (b restBackend) Store(tenant string) (rest.KV, bool) {
	if b.d.sub.kvs == nil {
		return nil, false
	}
	if r, ok := b.d.sub.kvs.tier.Routed(tenant); ok {
		return r, true
	}
	l, ok := b.d.sub.kvs.tier.Local(tenant)
	if !ok {
		return nil, false
	}
	return l, true
}

// Policy implements rest.Backend: the tenant's allow-list as the fences
// apply it (the file's, or the runtime one) and its CORS origins.
func (b restBackend) Policy(tenant string) (rest.Policy, bool) {
	return b.d.tenantPolicy(tenant)
}

// Quick implements rest.Quick: a request runs in place on an event loop
// unless its store is routed (a clustered tenant) or its secret still has
// to be hashed.
func (b restBackend) Quick(tenant, secret string) bool {
	if secret == "" {
		return true
	}
	if b.d.sub.kvs == nil {
		return false
	}
	if _, routed := b.d.sub.kvs.tier.Routed(tenant); routed {
		return false
	}
	return b.d.creds.Verified(tenant, secret)
}

// Authenticate implements rest.Backend.
func (b restBackend) Authenticate(tenant, secret string) bool {
	return b.d.creds.Verify(tenant, secret, credential.Login, credential.Token)
}

// tenantPolicy returns a tenant's current allow-list and CORS origins.
func (d *Daemon) tenantPolicy(tenant string) (rest.Policy, bool) {
	d.mu.RLock()
	cfg, ov := d.cfg, d.overlay
	d.mu.RUnlock()
	i := slices.IndexFunc(cfg.Tenants, func(t config.Tenant) bool { return t.Name == tenant })
	if i < 0 {
		return rest.Policy{}, false
	}
	var p rest.Policy
	if r := cfg.Tenants[i].REST; r != nil {
		p.CORSOrigins = r.CORSOrigins
	}
	for _, s := range cfg.Services() {
		if s.Tenant == tenant && s.Part == "" {
			p.Allow = s.Allow
		}
	}
	if a, ok := ov.Allow[tenant]; ok {
		p.Allow = a
	}
	return p, true
}

// credentialsFile is where the hashed credentials are kept in the state
// directory.
const credentialsFile = "credentials.json"

// loadCredentials opens the credential store kept in dir.
func loadCredentials(dir string) (*credential.Store, error) {
	path := filepath.Join(dir, credentialsFile)
	var entries []credential.Entry
	if _, err := statefile.Load(path, &entries); err != nil {
		return nil, fmt.Errorf("daemon: credentials: %w", err)
	}
	return credential.New(entries, func(e []credential.Entry) error { return statefile.Save(path, e) }, credential.Params{}), nil
}

// IssueCredential implements api.CredentialBackend: a tenant's (or, tenant
// "", the operator's) new credential, or a tenant's new API token, kept
// hashed under the state directory.
func (d *Daemon) IssueCredential(ctx context.Context, tenant string, token bool) (api.Credential, error) {
	if tenant != credential.Operator {
		d.mu.RLock()
		ok := slices.ContainsFunc(d.cfg.Tenants, func(t config.Tenant) bool { return t.Name == tenant })
		d.mu.RUnlock()
		if !ok {
			return api.Credential{}, fmt.Errorf("%w: tenant %s", api.ErrNotFound, tenant)
		}
	}
	kind := credential.Login
	if token {
		kind = credential.Token
	}
	secret, e, err := d.creds.Issue(tenant, kind)
	if err != nil {
		return api.Credential{}, fmt.Errorf("daemon: %w", err)
	}
	who := tenant
	if who == credential.Operator {
		who = "operator"
	}
	d.log.Info("credential issued", "subject", who, "kind", string(kind), "id", e.ID)
	return api.Credential{Tenant: tenant, Kind: string(kind), ID: e.ID, Secret: secret, Created: e.Created}, nil
}
