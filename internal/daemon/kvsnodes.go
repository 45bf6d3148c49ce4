package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/kvs"
	"github.com/lbd-project/lbd/pkg/slots"
)

// The daemon keeps the storage tier's membership (`lbctl node`).
var _ api.KVSNodesBackend = (*Daemon)(nil)

// KVSNodes implements api.KVSNodesBackend: the storage membership as this
// node's copy of the cluster state has it.
func (d *Daemon) KVSNodes(context.Context) (api.KVSNodes, error) {
	rc := d.raftNode()
	if rc == nil {
		return api.KVSNodes{}, fmt.Errorf("%w: node %s has no cluster section: its storage tier is this node alone", api.ErrNotFound, d.node.Name)
	}
	ms, err := kvs.MembersStatus(rc.n)
	if err != nil {
		return api.KVSNodes{}, err
	}
	return api.KVSNodes{Nodes: ms}, nil
}

// ChangeKVSNode implements api.KVSNodesBackend: it checks the request
// against the configuration and the slot maps and writes the new
// membership by compare-and-set (forwarded to the raft leader); the
// leader's placement then moves the slots (placeKVSTenants).
func (d *Daemon) ChangeKVSNode(ctx context.Context, req api.KVSNodeRequest) (api.KVSNodes, error) {
	if err := req.Check(); err != nil {
		return api.KVSNodes{}, err
	}
	rc := d.raftNode()
	if rc == nil {
		return api.KVSNodes{}, fmt.Errorf("%w: node %s has no cluster section: a storage tier of one node has no membership to change", api.ErrInvalid, d.node.Name)
	}
	d.mu.RLock()
	cfg := d.cfg
	d.mu.RUnlock()
	i := slices.IndexFunc(cfg.Nodes, func(n config.Node) bool { return n.Name == req.Name })
	switch {
	case i < 0 && req.Op != api.KVSNodeRemove:
		return api.KVSNodes{}, fmt.Errorf("%w: unknown node %s (not in the configuration's nodes)", api.ErrNotFound, req.Name)
	case i >= 0 && !cfg.Nodes[i].Role.IsStorage():
		return api.KVSNodes{}, fmt.Errorf("%w: node %s is not a storage node (role %s)", api.ErrInvalid, req.Name, cfg.Nodes[i].Role)
	}
	if _, joined := rc.n.Get(kvs.NodeKey(req.Name)); req.Op == api.KVSNodeAdd && !joined {
		return api.KVSNodes{}, &api.Error{Status: http.StatusConflict, Message: fmt.Sprintf("node %s has not joined the storage tier yet (is its lbd running, with this cluster section?)", req.Name)}
	}
	file := storageNodes(cfg)
	_, err := kvs.ChangeMembers(ctx, rc.n, file, func(cur *slots.Members, maps map[string]*slots.Map) (*slots.Members, error) {
		switch req.Op {
		case api.KVSNodeAdd:
			return cur.Add(req.Name, file)
		case api.KVSNodeDrain:
			return cur.Drain(req.Name, maps)
		default:
			return cur.Remove(req.Name, maps, req.Force)
		}
	})
	switch {
	case errors.Is(err, slots.ErrUnknownNode):
		return api.KVSNodes{}, fmt.Errorf("%w: %w", api.ErrNotFound, err)
	case errors.Is(err, slots.ErrRefused):
		return api.KVSNodes{}, &api.Error{Status: http.StatusConflict, Message: err.Error()}
	case err != nil:
		return api.KVSNodes{}, proposeErr(err)
	}
	d.log.Info("kvs storage membership changed", "op", req.Op, "node", req.Name, "force", req.Force)
	return d.KVSNodes(ctx)
}
