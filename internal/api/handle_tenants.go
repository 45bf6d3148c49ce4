package api

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"

	"github.com/lbd-project/lbd/pkg/config"
)

func (s *Server) listTenants(w http.ResponseWriter, r *http.Request) {
	ts, err := s.backend.Tenants(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	if ts == nil {
		ts = []Tenant{}
	}
	writeJSON(w, ts)
}

func (s *Server) getTenant(w http.ResponseWriter, r *http.Request) {
	t, err := s.findTenant(r)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, t)
}

func (s *Server) addTenant(w http.ResponseWriter, r *http.Request) {
	var t config.Tenant
	if err := decodeYAML(w, r, &t); err != nil {
		writeError(w, err)
		return
	}
	if err := checkTenant(t); err != nil {
		writeError(w, err)
		return
	}
	if allow, _ := config.ParseAllow(t.Allow); t.AllowAny && slices.ContainsFunc(allow, config.AdmitsAnybody) {
		s.log.Warn("new tenant admits (nearly) everybody, confirmed with allow_any", "tenant", t.Name, "allow", t.Allow)
	}
	if err := s.backend.AddTenant(r.Context(), t); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, OK{OK: true})
}

func (s *Server) deleteTenant(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !config.ValidName(name) {
		writeError(w, invalidf("invalid tenant name %q", name))
		return
	}
	if err := s.backend.DeleteTenant(r.Context(), name); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, OK{OK: true})
}

func (s *Server) getAllow(w http.ResponseWriter, r *http.Request) {
	t, err := s.findTenant(r)
	if err != nil {
		writeError(w, err)
		return
	}
	allow := t.Allow
	if allow == nil {
		allow = []netip.Prefix{}
	}
	writeJSON(w, AllowList{Tenant: t.Name, Allow: allow})
}

func (s *Server) changeAllow(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !config.ValidName(name) {
		writeError(w, invalidf("invalid tenant name %q", name))
		return
	}
	var req AllowRequest
	if err := decodeJSON(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	switch req.Op {
	case AllowAdd, AllowDel:
		if len(req.Entries) == 0 {
			writeError(w, invalidf("allow %s: no entries", req.Op))
			return
		}
	case AllowSet:
	default:
		writeError(w, invalidf("unknown allow op %q (want add, del or set)", req.Op))
		return
	}
	entries, err := config.ParseAllow(req.Entries)
	if err != nil {
		writeError(w, invalidf("%v", err))
		return
	}
	if req.Op == AllowDel {
		// Taking an entry out never opens anything.
	} else if err := checkAllowAny(entries, req.AllowAny, "entries"); err != nil {
		writeError(w, err)
		return
	}
	if req.AllowAny && req.Op != AllowDel && slices.ContainsFunc(entries, config.AdmitsAnybody) {
		s.log.Warn("allow-list change admits (nearly) everybody, confirmed with allow_any", "tenant", name, "entries", req.Entries)
	}
	t, err := s.findTenant(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := sameFamily(t, entries); err != nil {
		writeError(w, err)
		return
	}
	list, err := s.backend.ChangeAllow(r.Context(), name, req.Op, entries)
	if err != nil {
		writeError(w, err)
		return
	}
	if list == nil {
		list = []netip.Prefix{}
	}
	s.log.Info("allow-list changed through the API", "tenant", name, "op", string(req.Op), "entries", len(entries), "now", len(list))
	writeJSON(w, AllowList{Tenant: name, Allow: list})
}

func (s *Server) kvsStats(w http.ResponseWriter, r *http.Request) {
	tenant := r.URL.Query().Get("tenant")
	if tenant != "" && !config.ValidName(tenant) {
		writeError(w, invalidf("invalid tenant name %q", tenant))
		return
	}
	st, err := s.backend.KVSStats(r.Context(), tenant)
	if err != nil {
		writeError(w, err)
		return
	}
	if st == nil {
		st = []KVSStats{}
	}
	writeJSON(w, st)
}

// sameFamily refuses allow entries of the other address family than the
// tenant's VIP: such a source can never reach the port.
func sameFamily(t Tenant, entries []netip.Prefix) error {
	if !t.VIP.IsValid() {
		return nil
	}
	for _, p := range entries {
		if p.Addr().Is4() != t.VIP.Is4() {
			return invalidf("allow %s: tenant %s's VIP %s is of the other address family", p, t.Name, t.VIP)
		}
	}
	return nil
}

// findTenant looks the URL's tenant up.
func (s *Server) findTenant(r *http.Request) (Tenant, error) {
	name := r.PathValue("name")
	if !config.ValidName(name) {
		return Tenant{}, invalidf("invalid tenant name %q", name)
	}
	ts, err := s.backend.Tenants(r.Context())
	if err != nil {
		return Tenant{}, err
	}
	i := slices.IndexFunc(ts, func(t Tenant) bool { return t.Name == name })
	if i < 0 {
		return Tenant{}, &Error{Status: http.StatusNotFound, Message: "no tenant " + name}
	}
	return ts[i], nil
}

// checkTenant validates what can be checked of a tenant on its own; the
// backend checks it against the rest of the configuration.
// checkAllowAny refuses entries that admit (nearly) everybody unless the
// request confirmed them; field names the list in the body.
func checkAllowAny(entries []netip.Prefix, confirmed bool, field string) error {
	if confirmed {
		return nil
	}
	for i, p := range entries {
		if config.AdmitsAnybody(p) {
			return invalidf("%s[%d]: %s admits (nearly) everybody: confirm with allow_any (lbctl --allow-any)", field, i, p)
		}
	}
	return nil
}

func checkTenant(t config.Tenant) error {
	bad := func(format string, args ...any) error {
		return &Error{Status: http.StatusBadRequest, Message: "invalid tenant: " + fmt.Sprintf(format, args...)}
	}
	if !config.ValidName(t.Name) {
		return bad("name %q: use letters, digits, '-', '_', '.' (at most 32)", t.Name)
	}
	if a, err := netip.ParseAddr(t.Service.VIP); err != nil || a.Zone() != "" {
		return bad("invalid vip %q", t.Service.VIP)
	}
	if t.Service.Port < 1 || t.Service.Port > 65535 {
		return bad("port %d out of range 1-65535", t.Service.Port)
	}
	if p := t.Service.Protocol; p != "" && p != "tcp" && p != "udp" {
		return bad("unknown protocol %q", p)
	}
	if sc := t.Service.Scheduler; sc != "" && !slices.Contains(config.Schedulers, sc) {
		return bad("unknown scheduler %q (want one of %v)", sc, config.Schedulers)
	}
	if f := t.Service.Forward; f != "" && !slices.Contains(config.Forwards, f) {
		return bad("unknown forward %q (want dr, nat or tun)", f)
	}
	allow, err := config.ParseAllow(t.Allow)
	if err != nil {
		return bad("%v", err)
	}
	if err := checkAllowAny(allow, t.AllowAny, "allow"); err != nil {
		return err
	}
	for _, rl := range t.Reals {
		if err := checkReal(rl); err != nil {
			return bad("%v", err)
		}
	}
	kv := t.KVS // CheckKVS fills defaults: the daemon keeps what was sent
	if probs := config.CheckKVS(&kv); len(probs) > 0 {
		return bad("kvs.%s: %s", probs[0].Field, probs[0].Msg)
	}
	return nil
}
