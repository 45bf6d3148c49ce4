package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// requireToken refuses requests without "Authorization: Bearer TOKEN".
// Both sides are hashed first so the comparison is constant-time whatever
// the lengths.
func requireToken(token string, next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		got, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="lbd"`)
			writeError(w, &Error{Status: http.StatusUnauthorized, Message: "missing bearer token"})
			return
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="lbd", error="invalid_token"`)
			writeError(w, &Error{Status: http.StatusUnauthorized, Message: "invalid bearer token"})
			return
		}
		next.ServeHTTP(w, r)
	})
}
