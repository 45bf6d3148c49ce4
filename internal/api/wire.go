package api

import "net/netip"

// WeightRequest is the body of PUT /v1/services/{name}/reals/{addr}/weight.
type WeightRequest struct {
	Weight int `json:"weight"`
}

// AllowRequest is the body of POST /v1/tenants/{name}/allow.
type AllowRequest struct {
	Op      AllowOp  `json:"op"`
	Entries []string `json:"entries"`
	// AllowAny confirms entries that admit (nearly) everybody (0.0.0.0/0,
	// ::/0, any prefix shorter than /8); without it they are refused.
	AllowAny bool `json:"allow_any,omitempty"`
}

// AllowList is a tenant's allow-list, as GET and POST
// /v1/tenants/{name}/allow return it.
type AllowList struct {
	Tenant string         `json:"tenant"`
	Allow  []netip.Prefix `json:"allow"`
}

// OK is the body of a successful call that returns nothing else.
type OK struct {
	OK bool `json:"ok"`
}
