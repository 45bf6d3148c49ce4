package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// More sentinel errors beside those of backend.go; the Client's *Error
// matches them with errors.Is too.
var (
	// ErrUnauthorized is a caller without a valid token (401/403).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrUnreachable is returned by the Client when lbd cannot be reached.
	ErrUnreachable = errors.New("cannot reach lbd")
)

// Error is the body of every failed API call, and the error the Client
// returns for one.
type Error struct {
	// Status is the HTTP status code (not sent in the body).
	Status int `json:"-"`
	// Message says what went wrong.
	Message string `json:"error"`
	// Problems lists configuration problems as "file:line: msg".
	Problems []string `json:"problems,omitempty"`
	// Code names a condition the caller may act on ("no_leader").
	Code string `json:"code,omitempty"`
}

// CodeNoLeader is Error.Code of an ErrNoLeader.
const CodeNoLeader = "no_leader"

// Error implements error: the message, then one problem per line.
func (e *Error) Error() string {
	if len(e.Problems) == 0 {
		return e.Message
	}
	return e.Message + "\n" + strings.Join(e.Problems, "\n")
}

// Is maps the status code to the package's sentinel errors.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrInvalid:
		return e.Status == http.StatusBadRequest
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrConflict:
		return e.Status == http.StatusConflict
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
	case ErrNoLeader:
		return e.Code == CodeNoLeader
	}
	return false
}

// invalidf is an ErrInvalid with a message.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}
