package daemon

import (
	"fmt"
	"net/netip"

	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/healthcheck"
)

// realID names a real server of a service, stably across reloads: the
// health checker's target ID and the key of runtime weight overrides.
func realID(s config.ResolvedService, r config.ResolvedReal) string {
	return fmt.Sprintf("%s/%s/%s", s.Protocol, netip.AddrPortFrom(s.VIP, s.Port), netip.AddrPortFrom(r.Addr, r.Port))
}

// healthTargets turns the services' real servers into health-check targets.
// Services whose check type is "none" are not checked (always up).
func healthTargets(svcs []config.ResolvedService) []healthcheck.Target {
	var out []healthcheck.Target
	for _, s := range svcs {
		spec, ok := healthSpec(s.Health)
		if !ok {
			continue
		}
		for _, r := range s.Reals {
			t := healthcheck.Target{ID: realID(s, r), Addr: netip.AddrPortFrom(r.Addr, r.Port), Spec: spec}
			if p := s.Health.ConnectPort; p != 0 {
				t.Spec.ConnectAddr = netip.AddrPortFrom(r.Addr, uint16(p))
			}
			out = append(out, t)
		}
	}
	return out
}

// healthSpec maps a resolved config check to the checker's Spec; false for
// type none.
func healthSpec(h config.HealthSpec) (healthcheck.Spec, bool) {
	spec := healthcheck.Spec{
		ConnectTimeout:   h.ConnectTimeout,
		DelayLoop:        h.DelayLoop,
		DelayBeforeRetry: h.DelayBeforeRetry,
		Retry:            h.Retry,
		Warmup:           h.Warmup,
		Alpha:            h.Alpha,
		HTTP: healthcheck.HTTPSpec{
			Path:        h.Path,
			StatusCodes: h.StatusCodes,
			Digest:      h.Digest,
			Host:        h.Host,
		},
	}
	if h.Warmup == 0 {
		spec.Warmup = -1 // the checker reads 0 as "keepalived's default"
	}
	switch h.Type {
	case "tcp", "":
		spec.Type = healthcheck.TCP
	case "http":
		spec.Type = healthcheck.HTTP
	case "memcached":
		spec.Type = healthcheck.Memcached
	default:
		return healthcheck.Spec{}, false
	}
	return spec, true
}

// healthView answers whether a real server is up.
type healthView interface {
	State(id string) (healthcheck.Status, bool)
}

// effectiveServices applies health and runtime overrides to the configured
// services: the state IPVS should have now. A server that is down gets
// weight 0 with inhibit_on_failure and is left out otherwise (the
// reconciler then drains it). A server the checker does not know yet (just
// added) counts as up unless the check is alpha.
func effectiveServices(svcs []config.ResolvedService, health healthView, ov *Overlay) []config.ResolvedService {
	out := make([]config.ResolvedService, 0, len(svcs))
	for _, s := range svcs {
		e := s
		e.Reals = make([]config.ResolvedReal, 0, len(s.Reals))
		if ov != nil {
			if allow, ok := ov.Allow[s.Tenant]; ok && s.Tenant != "" {
				e.Allow = allow
			}
		}
		for _, r := range s.Reals {
			id := realID(s, r)
			if ov != nil {
				if w, ok := ov.Weights[id]; ok {
					r.Weight = w
				}
			}
			if !isUp(s, id, health) {
				if !s.Health.InhibitOnFailure {
					continue
				}
				r.Weight = 0
			}
			e.Reals = append(e.Reals, r)
		}
		out = append(out, e)
	}
	return out
}

func isUp(s config.ResolvedService, id string, health healthView) bool {
	if s.Health.Type == "none" || health == nil {
		return true
	}
	st, ok := health.State(id)
	if !ok {
		return !s.Health.Alpha
	}
	return st.Up
}
