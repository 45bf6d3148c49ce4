package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/lbd-project/lbd/pkg/config"
	"go.yaml.in/yaml/v3"
)

func (s *Server) listServices(w http.ResponseWriter, r *http.Request) {
	st, err := s.backend.Status(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	if st.Services == nil {
		st.Services = []ServiceStatus{}
	}
	writeJSON(w, st.Services)
}

func (s *Server) getService(w http.ResponseWriter, r *http.Request) {
	svc, err := s.findService(r, r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, svc)
}

func (s *Server) addService(w http.ResponseWriter, r *http.Request) {
	var vs config.VirtualService
	if err := decodeYAML(w, r, &vs); err != nil {
		writeError(w, err)
		return
	}
	if err := checkService(vs); err != nil {
		writeError(w, err)
		return
	}
	if err := s.backend.AddService(r.Context(), vs); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, OK{OK: true})
}

func (s *Server) deleteService(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if name == "" {
		writeError(w, invalidf("no service name"))
		return
	}
	if err := s.backend.DeleteService(r.Context(), name); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, OK{OK: true})
}

func (s *Server) addReal(w http.ResponseWriter, r *http.Request) {
	var rl config.Real
	if err := decodeYAML(w, r, &rl); err != nil {
		writeError(w, err)
		return
	}
	if err := checkReal(rl); err != nil {
		writeError(w, err)
		return
	}
	if err := s.backend.AddReal(r.Context(), r.PathValue("name"), rl); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, OK{OK: true})
}

func (s *Server) deleteReal(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	ap, err := s.realAddr(r, name, r.PathValue("addr"))
	if err != nil {
		writeError(w, err)
		return
	}
	if err := s.backend.DeleteReal(r.Context(), name, ap); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, OK{OK: true})
}

func (s *Server) setWeight(w http.ResponseWriter, r *http.Request) {
	var req WeightRequest
	if err := decodeJSON(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.Weight < 0 || req.Weight > 65535 {
		writeError(w, invalidf("weight %d out of range 0-65535", req.Weight))
		return
	}
	name := r.PathValue("name")
	ap, err := s.realAddr(r, name, r.PathValue("addr"))
	if err != nil {
		writeError(w, err)
		return
	}
	if err := s.backend.SetWeight(r.Context(), name, ap, req.Weight); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, OK{OK: true})
}

// parseRealAddr parses ADDR:PORT or a bare ADDR (port 0).
func parseRealAddr(s string) (netip.Addr, uint16, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr(), ap.Port(), true
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, 0, false
	}
	return a, 0, true
}

// realAddr resolves a real server address from the URL; a bare address
// takes the service's port.
func (s *Server) realAddr(r *http.Request, service, raw string) (netip.AddrPort, error) {
	a, port, ok := parseRealAddr(raw)
	if !ok {
		return netip.AddrPort{}, invalidf("invalid real server address %q (want ADDR or ADDR:PORT)", raw)
	}
	if port != 0 {
		return netip.AddrPortFrom(a, port), nil
	}
	svc, err := s.findService(r, service)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(a, svc.Port), nil
}

// findService looks a service up in the backend's status.
func (s *Server) findService(r *http.Request, name string) (ServiceStatus, error) {
	st, err := s.backend.Status(r.Context())
	if err != nil {
		return ServiceStatus{}, err
	}
	for _, svc := range st.Services {
		if svc.Name == name {
			return svc, nil
		}
	}
	return ServiceStatus{}, &Error{Status: http.StatusNotFound, Message: "no service " + name}
}

// checkService validates a new virtual service as the file would, before
// the backend sees it: it is parsed as a one-service configuration.
func checkService(vs config.VirtualService) error {
	doc, err := yaml.Marshal(config.Config{VirtualServices: []config.VirtualService{vs}})
	if err != nil {
		return invalidf("service: %v", err)
	}
	if _, err := config.Parse(doc, "service"); err != nil {
		var ce *config.Error
		if !errors.As(err, &ce) {
			return invalidf("service: %v", err)
		}
		var msgs []string
		for _, p := range ce.Problems {
			msgs = append(msgs, p.Msg) // lines of the synthetic file mean nothing to the caller
		}
		return &Error{Status: http.StatusBadRequest, Message: "invalid service: " + strings.Join(msgs, "; ")}
	}
	return nil
}

// checkReal validates a real server on its own (the backend checks it
// against its service).
func checkReal(rl config.Real) error {
	bad := func(msg string) error { return &Error{Status: http.StatusBadRequest, Message: msg} }
	if a, err := netip.ParseAddr(rl.Address); err != nil || a.Zone() != "" {
		return bad(fmt.Sprintf("invalid real server address %q", rl.Address))
	}
	if rl.Port < 0 || rl.Port > 65535 {
		return bad(fmt.Sprintf("port %d out of range 0-65535", rl.Port))
	}
	if rl.Weight != nil && (*rl.Weight < 0 || *rl.Weight > 65535) {
		return bad(fmt.Sprintf("weight %d out of range 0-65535", *rl.Weight))
	}
	return nil
}
