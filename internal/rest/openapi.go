package rest

import (
	_ "embed"
	"net/http"
)

// openAPIDoc describes the API (OpenAPI 3); the API serves it itself.
//
//go:embed openapi.json
var openAPIDoc []byte

func (h *Handler) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", typeJSON)
	w.Write(openAPIDoc)
}
