package rest

import (
	"net/http"
	"slices"
)

// cors applies the tenant's CORS policy. It answers a preflight (OPTIONS
// with Access-Control-Request-Method) itself and returns true; for other
// requests it adds the headers a listed origin needs and returns false.
// An origin not listed gets no CORS header: the browser then keeps the
// answer from the page.
func (h *Handler) cors(w http.ResponseWriter, r *http.Request, origins []string) bool {
	origin := r.Header.Get("Origin")
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	if origin == "" {
		if preflight {
			h.fail(w, r, errorf(http.StatusBadRequest, "bad_preflight", "header.Origin", "a preflight needs an Origin"))
		}
		return preflight
	}
	allowed := slices.Contains(origins, origin) || slices.Contains(origins, "*")
	if allowed {
		hd := w.Header()
		hd.Set("Access-Control-Allow-Origin", origin)
		hd.Add("Vary", "Origin")
		hd.Set("Access-Control-Expose-Headers", "X-Lbd-Flags, X-Lbd-Expires, X-Lbd-Cas")
	}
	if !preflight {
		return false
	}
	if !allowed {
		h.fail(w, r, errorf(http.StatusForbidden, "cors_origin_refused", "header.Origin", "origin %q may not call tenant %q's API (rest.cors_origins)", origin, h.tenant))
		return true
	}
	hd := w.Header()
	hd.Set("Access-Control-Allow-Methods", "GET, HEAD, PUT, DELETE, POST, OPTIONS")
	hd.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept")
	hd.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}
