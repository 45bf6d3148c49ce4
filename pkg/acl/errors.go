package acl

import (
	"errors"
	"fmt"
)

// ErrUnknownTenant is returned for a tenant the Manager does not fence.
var ErrUnknownTenant = errors.New("acl: unknown tenant")

// errExist is returned by kernel.createSet for a name already taken.
var errExist = errors.New("already exists")

// TenantError reports that one tenant could not be brought to its desired
// state. Whatever that tenant had before stays enforced; a tenant that is
// new is not fenced, so its service must not be announced.
type TenantError struct {
	Tenant string
	Err    error
}

func (e *TenantError) Error() string { return fmt.Sprintf("acl: tenant %s: %v", e.Tenant, e.Err) }

// Unwrap returns the underlying error.
func (e *TenantError) Unwrap() error { return e.Err }

// FailedTenants returns the names of the tenants an error from Apply
// reports as failed, in the order reported.
func FailedTenants(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *TenantError:
			out = append(out, e.Tenant)
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}
