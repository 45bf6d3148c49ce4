package rest

import (
	_ "embed"
	"net/http"
	"strconv"
)

// openAPIDoc describes the API (OpenAPI 3); the API serves it itself.
//
//go:embed openapi.json
var openAPIDoc []byte

func (h *Handler) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", typeJSON)
	w.Header().Set("Content-Length", strconv.Itoa(len(openAPIDoc)))
	w.Write(openAPIDoc)
}
