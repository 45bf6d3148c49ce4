package rest

import (
	"fmt"
	"net/http"
)

// apiError is an answer other than success: an HTTP status, a stable code
// a program can test, the field at fault (a path into the request, as
// "keys[2]" or "query.ttl") and a message for people.
type apiError struct {
	XMLName struct{} `json:"-" xml:"error"`
	Status  int      `json:"-" xml:"-"`
	Code    string   `json:"code" xml:"code"`
	Field   string   `json:"field,omitempty" xml:"field,omitempty"`
	Message string   `json:"message" xml:"message"`
}

func (e *apiError) Error() string { return e.Message }

func errorf(status int, code, field, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// errorBody is the JSON body of every error answer: {"error": {...}}; XML
// has <error> at the top.
type errorBody struct {
	Error *apiError `json:"error"`
}

// fail writes e in the format the client accepts (JSON unless it asked
// for XML).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, e *apiError) {
	if e.Status >= 500 {
		h.log.Error("rest: request failed", "method", r.Method, "path", r.URL.Path, "error", e.Message)
	}
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="lbd"`)
	}
	var v any = errorBody{e}
	if wantsXML(r) {
		v = e
	}
	h.write(w, r, e.Status, v)
}
