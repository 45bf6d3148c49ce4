package api

import (
	"context"
	"net/http"
	"time"

	"github.com/lbd-project/lbd/pkg/config"
)

// CredentialBackend is what a backend offers to issue the secrets of the
// panel and the data API (the daemon implements it; a backend without it
// answers 501). Secrets are kept hashed; the secret is returned once.
type CredentialBackend interface {
	// IssueCredential issues tenant's credential (tenant "" is the
	// operator), replacing the previous one, or (token) a new API token.
	IssueCredential(ctx context.Context, tenant string, token bool) (Credential, error)
}

// Credential is a secret just issued: shown once, kept only hashed.
type Credential struct {
	// Tenant is empty for the operator's credential.
	Tenant  string    `json:"tenant,omitempty"`
	Kind    string    `json:"kind"` // credential or token
	ID      string    `json:"id"`
	Secret  string    `json:"secret"`
	Created time.Time `json:"created"`
}

func (s *Server) issueCredential(w http.ResponseWriter, r *http.Request) {
	cb, ok := s.backend.(CredentialBackend)
	if !ok {
		writeError(w, &Error{Status: http.StatusNotImplemented, Message: "this lbd does not issue credentials"})
		return
	}
	tenant, token := r.PathValue("name"), r.URL.Query().Get("kind") == "token"
	if r.URL.Path == "/v1/operator/credentials" {
		tenant = ""
		if token {
			writeError(w, invalidf("the operator has no API tokens"))
			return
		}
	} else if !config.ValidName(tenant) {
		writeError(w, invalidf("invalid tenant name %q", tenant))
		return
	}
	c, err := cb.IssueCredential(r.Context(), tenant, token)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, c)
}

// IssueCredential asks lbd for a tenant's new credential (tenant "" for
// the operator's) or, with token, a new API token.
func (c *Client) IssueCredential(ctx context.Context, tenant string, token bool) (Credential, error) {
	path := "/v1/operator/credentials"
	if tenant != "" {
		path = "/v1/tenants/" + tenant + "/credentials"
	}
	if token {
		path += "?kind=token"
	}
	var out Credential
	err := c.sendJSON(ctx, http.MethodPost, path, struct{}{}, &out)
	return out, err
}
