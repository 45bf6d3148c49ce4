package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Routes of the node-to-node RPC. Other packages register theirs with
// Handle, outside the /cluster/ prefix.
const (
	rpcPrefix   = "/cluster/v1/"
	pathPropose = rpcPrefix + "propose"
	pathJoin    = rpcPrefix + "join"
	pathRemove  = rpcPrefix + "remove"
	pathStatus  = rpcPrefix + "status"
	pathBarrier = rpcPrefix + "barrier"
)

// headerFrom names the node that sends a cluster call (forwarded calls
// are not forwarded again: the leader may have changed meanwhile, and the
// sender looks for it again).
const headerFrom = "X-Lbd-Node"

// maxRPCBody bounds a request body of the cluster routes.
const maxRPCBody = MaxTxnBytes + 64<<10

// rpcResult is the answer of the leader-side routes.
type rpcResult struct {
	Index uint64 `json:"index"`
	// Code classifies Error: conflict, no_leader, not_leader, invalid,
	// shutdown, error.
	Code  string `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
}

// remoteError is an error the leader returned, matching the package's
// errors by its code.
type remoteError struct{ code, msg string }

func (e *remoteError) Error() string { return e.msg }

// Is lets errors.Is match ErrConflict, ErrNoLeader and ErrShutdown.
func (e *remoteError) Is(target error) bool {
	switch e.code {
	case "conflict":
		return target == ErrConflict
	case "no_leader", "shutdown":
		return target == ErrNoLeader
	case "not_leader":
		return target == errNotLeader
	}
	return false
}

func errCode(err error) string {
	switch {
	case errors.Is(err, ErrConflict):
		return "conflict"
	case errors.Is(err, errNotLeader):
		return "not_leader"
	case errors.Is(err, ErrNoLeader):
		return "no_leader"
	case errors.Is(err, ErrShutdown):
		return "shutdown"
	case errors.Is(err, errInvalid):
		return "invalid"
	}
	return "error"
}

// errInvalid marks a request the leader refused as malformed.
var errInvalid = errors.New("cluster: invalid request")

func codeStatus(code string) int {
	switch code {
	case "":
		return http.StatusOK
	case "conflict":
		return http.StatusConflict
	case "not_leader":
		return http.StatusMisdirectedRequest
	case "no_leader", "shutdown":
		return http.StatusServiceUnavailable
	case "invalid":
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// Handle registers a node-to-node handler on this node's RPC server (the
// mutual-TLS listener: every caller holds a certificate of the cluster CA;
// r.TLS.PeerCertificates[0] names it). Patterns are http.ServeMux
// patterns; the /cluster/v1/ prefix is the package's own.
func (n *Node) Handle(pattern string, h http.Handler) {
	n.rpc.Handle(pattern, h)
}

// Client returns an HTTP client that dials peers with the cluster TLS
// (their certificate must be of the cluster CA and carry the host of the
// URL; this node's certificate is presented). Use PeerURL for the URL.
func (n *Node) Client() *http.Client { return n.client }

// PeerURL is the URL of path on the node at address (host:port).
func PeerURL(address, path string) string { return "https://" + address + path }

func (n *Node) routes() {
	n.rpc.HandleFunc("POST "+pathPropose, n.handlePropose)
	n.rpc.HandleFunc("POST "+pathJoin, n.handleJoin)
	n.rpc.HandleFunc("POST "+pathRemove, n.handleRemove)
	n.rpc.HandleFunc("POST "+pathBarrier, n.handleBarrier)
	n.rpc.HandleFunc("GET "+pathStatus, n.handleStatus)
}

// post sends body to path on the node at address and decodes an rpcResult.
func (n *Node) post(ctx context.Context, address, path string, body []byte) (uint64, error) {
	ctx, cancel := n.rpcContext(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, PeerURL(address, path), bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("cluster: %s: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(headerFrom, n.opts.NodeID)
	resp, err := n.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var res rpcResult
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&res); err != nil {
		return 0, fmt.Errorf("cluster: %s on %s: status %s: %w", path, address, resp.Status, err)
	}
	if res.Code != "" || res.Error != "" {
		return res.Index, &remoteError{code: res.Code, msg: res.Error}
	}
	return res.Index, nil
}

// rpcContext bounds a call whose context has no deadline.
func (n *Node) rpcContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, n.opts.RPCTimeout)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeResult(w http.ResponseWriter, idx uint64, err error) {
	res := rpcResult{Index: idx}
	if err != nil {
		res.Code, res.Error = errCode(err), err.Error()
	}
	writeJSON(w, codeStatus(res.Code), res)
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRPCBody))
	if err != nil {
		return nil, fmt.Errorf("%w: read body: %v", errInvalid, err)
	}
	return b, nil
}

// handlePropose applies a forwarded transaction; only the leader accepts.
func (n *Node) handlePropose(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(w, r)
	if err != nil {
		writeResult(w, 0, err)
		return
	}
	if _, err := decodeTxn(b); err != nil {
		writeResult(w, 0, fmt.Errorf("%w: %v", errInvalid, err))
		return
	}
	if !n.IsLeader() {
		writeResult(w, 0, errNotLeader)
		return
	}
	idx, err := n.applyLocal(r.Context(), b)
	writeResult(w, idx, err)
}

func (n *Node) handleJoin(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(w, r)
	if err != nil {
		writeResult(w, 0, err)
		return
	}
	var s Server
	if err := json.Unmarshal(b, &s); err != nil || s.ID == "" || s.Address == "" {
		writeResult(w, 0, fmt.Errorf("%w: join: want {id, address, voter}: %v", errInvalid, err))
		return
	}
	if !n.IsLeader() {
		// A joining node may know only this one: pass its request on.
		if r.Header.Get(headerFrom) != s.ID {
			writeResult(w, 0, errNotLeader)
			return
		}
		idx, err := n.Join(r.Context(), s)
		writeResult(w, idx, err)
		return
	}
	idx, err := n.joinLocal(r.Context(), s)
	writeResult(w, idx, err)
}

func (n *Node) handleRemove(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(w, r)
	if err != nil {
		writeResult(w, 0, err)
		return
	}
	var req struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &req); err != nil || req.ID == "" {
		writeResult(w, 0, fmt.Errorf("%w: remove: want {id}: %v", errInvalid, err))
		return
	}
	if !n.IsLeader() {
		writeResult(w, 0, errNotLeader)
		return
	}
	idx, err := n.removeLocal(r.Context(), req.ID)
	writeResult(w, idx, err)
}

func (n *Node) handleBarrier(w http.ResponseWriter, r *http.Request) {
	if !n.IsLeader() {
		writeResult(w, 0, errNotLeader)
		return
	}
	idx, err := n.barrierLocal(r.Context())
	writeResult(w, idx, err)
}

func (n *Node) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, n.Status())
}

// getStatus asks the node at address for its Status.
func (n *Node) getStatus(ctx context.Context, address string) (Status, error) {
	var st Status
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, PeerURL(address, pathStatus), nil)
	if err != nil {
		return st, err
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("cluster: status of %s: %s", address, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return st, fmt.Errorf("cluster: status of %s: %w", address, err)
	}
	return st, nil
}

// timeoutOf is the raft timeout for an operation bounded by ctx.
func (n *Node) timeoutOf(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return time.Until(d)
	}
	return n.opts.RPCTimeout
}
