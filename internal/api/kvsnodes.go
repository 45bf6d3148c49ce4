package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/lbd-project/lbd/pkg/kvs"
)

// KVSNodesBackend is implemented by a backend that keeps the storage
// tier's membership (a node of a cluster): `lbctl node`.
type KVSNodesBackend interface {
	// KVSNodes are the storage nodes of the storage tier and what the slot
	// maps place on them.
	KVSNodes(ctx context.Context) (KVSNodes, error)
	// ChangeKVSNode adds, drains or removes a storage node (forwarded to
	// the raft leader); it returns the membership it wrote.
	ChangeKVSNode(ctx context.Context, req KVSNodeRequest) (KVSNodes, error)
}

// KVSNodes is the storage tier's membership.
type KVSNodes struct {
	Nodes []kvs.MemberStatus `json:"nodes"`
}

// KVS node operations (KVSNodeRequest.Op).
const (
	KVSNodeAdd    = "add"
	KVSNodeDrain  = "drain"
	KVSNodeRemove = "remove"
)

// KVSNodeRequest changes one storage node's membership.
type KVSNodeRequest struct {
	// Op is add (slots are placed on the node and rebuilt onto it), drain
	// (every slot moves off it) or remove (a drained node, or with Force a
	// dead one, leaves the storage tier).
	Op string `json:"op"`
	// Name is the node's name (the path's; optional in the body).
	Name  string `json:"name,omitempty"`
	Force bool   `json:"force,omitempty"`
}

// Check validates the request's fields.
func (r KVSNodeRequest) Check() error {
	switch r.Op {
	case KVSNodeAdd, KVSNodeDrain, KVSNodeRemove:
	default:
		return invalidf("op: %q: want add, drain or remove", r.Op)
	}
	if r.Name == "" {
		return invalidf("name: required (a storage node's name)")
	}
	if r.Force && r.Op != KVSNodeRemove {
		return invalidf("force: only with op remove")
	}
	return nil
}

func (s *Server) kvsNodesBackend(w http.ResponseWriter) (KVSNodesBackend, bool) {
	b, ok := s.backend.(KVSNodesBackend)
	if !ok {
		writeError(w, fmt.Errorf("%w: this lbd has no storage tier membership", ErrNotFound))
	}
	return b, ok
}

func (s *Server) kvsNodes(w http.ResponseWriter, r *http.Request) {
	b, ok := s.kvsNodesBackend(w)
	if !ok {
		return
	}
	ns, err := b.KVSNodes(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	if ns.Nodes == nil {
		ns.Nodes = []kvs.MemberStatus{}
	}
	writeJSON(w, ns)
}

func (s *Server) changeKVSNode(w http.ResponseWriter, r *http.Request) {
	b, ok := s.kvsNodesBackend(w)
	if !ok {
		return
	}
	var req KVSNodeRequest
	if err := decodeJSON(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	if name := r.PathValue("name"); req.Name == "" {
		req.Name = name
	} else if req.Name != name {
		writeError(w, invalidf("name: %q is not the node of the path, %q", req.Name, name))
		return
	}
	if err := req.Check(); err != nil {
		writeError(w, err)
		return
	}
	ns, err := b.ChangeKVSNode(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	if ns.Nodes == nil {
		ns.Nodes = []kvs.MemberStatus{}
	}
	writeJSON(w, ns)
}

// KVSNodes returns the storage tier's membership.
func (c *Client) KVSNodes(ctx context.Context) (KVSNodes, error) {
	return get[KVSNodes](ctx, c, "/v1/kvs/nodes")
}

// ChangeKVSNode adds, drains or removes a storage node.
func (c *Client) ChangeKVSNode(ctx context.Context, req KVSNodeRequest) (KVSNodes, error) {
	var out KVSNodes
	err := c.sendJSON(ctx, http.MethodPost, "/v1/kvs/nodes/"+url.PathEscape(req.Name), req, &out)
	return out, err
}
