package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/lbd-project/lbd/pkg/kvs"
)

// KVSClusterBackend is implemented by a backend that can report its
// storage tier's cluster (a storage node of a cluster): `lbctl kvs status`.
type KVSClusterBackend interface {
	// KVSClusterStatus is this node's view of its clustered tenants (slots,
	// primaries, in-sync sets, rebuilds); ErrNotFound if it has none.
	KVSClusterStatus(ctx context.Context) (kvs.ClusterStatus, error)
}

func (s *Server) kvsClusterStatus(w http.ResponseWriter, r *http.Request) {
	b, ok := s.backend.(KVSClusterBackend)
	if !ok {
		writeError(w, fmt.Errorf("%w: this node has no storage tier cluster", ErrNotFound))
		return
	}
	st, err := b.KVSClusterStatus(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	if st.Tenants == nil {
		st.Tenants = []kvs.TenantClusterStatus{}
	}
	writeJSON(w, st)
}

// KVSClusterStatus returns the storage tier's cluster as the node sees it.
func (c *Client) KVSClusterStatus(ctx context.Context) (kvs.ClusterStatus, error) {
	return get[kvs.ClusterStatus](ctx, c, "/v1/kvs/cluster")
}
