package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/lbd-project/lbd/pkg/config"
	"go.yaml.in/yaml/v3"
)

// writeJSON sends v with status 200.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to do
}

// writeError sends err as an Error body with the status it maps to.
func writeError(w http.ResponseWriter, err error) {
	e := toError(err)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(e)
}

// AsError classifies err as the API answers it: its status, message,
// problems and code (a backend that passes an error on to another node
// sends these, and the origin answers with them).
func AsError(err error) *Error { return toError(err) }

// toError classifies err: configuration problems and ErrInvalid are 400,
// ErrNotFound 404, ErrConflict 409, anything else is the backend's failure.
func toError(err error) *Error {
	var e *Error
	if errors.As(err, &e) && e.Status != 0 {
		return e
	}
	var ce *config.Error
	if errors.As(err, &ce) {
		probs := make([]string, len(ce.Problems))
		for i, p := range ce.Problems {
			probs[i] = p.String()
		}
		return &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("invalid configuration: %d problem(s)", len(probs)), Problems: probs}
	}
	if errors.Is(err, ErrNoLeader) {
		return &Error{Status: http.StatusServiceUnavailable, Message: err.Error(), Code: CodeNoLeader}
	}
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, ErrConflict):
		status = http.StatusConflict
	case errors.Is(err, ErrUnauthorized):
		status = http.StatusForbidden
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		status = http.StatusServiceUnavailable
	}
	return &Error{Status: status, Message: err.Error()}
}

// readBody reads a request body of at most limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &Error{Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("request body larger than %d bytes", limit)}
		}
		return nil, invalidf("read body: %v", err)
	}
	return data, nil
}

// decodeJSON decodes a JSON body strictly into v.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	data, err := readBody(w, r, MaxBodySize)
	if err != nil {
		return err
	}
	if err := dupKeys(data); err != nil {
		return invalidf("decode body: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalidf("decode body: %v", err)
	}
	if dec.More() {
		return invalidf("decode body: trailing data")
	}
	return nil
}

// decodeYAML decodes a body in the configuration file's syntax (YAML or
// JSON, with the file's key names) strictly into v.
func decodeYAML(w http.ResponseWriter, r *http.Request, v any) error {
	data, err := readBody(w, r, MaxBodySize)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return invalidf("empty body")
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return invalidf("decode body: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return nil
}
