package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/pkg/cluster"
)

// pathChanges is the node-to-node call that hands runtime changes to the
// leader (served on the cluster's mutual-TLS listener), as Consul
// forwards its writes: every change of the cluster enters the leader's
// one group commit, so writers through different nodes never conflict.
const pathChanges = "/lbd/v1/changes"

// leaderWait bounds how long a batch looks for a leader to take it.
const leaderWait = 3 * time.Second

// maxForwardBody bounds a forwarded batch and its answer.
const maxForwardBody = 8 << 20

// changesRequest is the body of pathChanges.
type changesRequest struct {
	Changes []Change `json:"changes"`
}

// changesResponse answers pathChanges: one result per change, in order.
type changesResponse struct {
	// NotLeader: the node is not the leader; nothing was proposed.
	NotLeader bool           `json:"not_leader,omitempty"`
	Results   []changeResult `json:"results,omitempty"`
}

// changeResult is one change's outcome on the leader.
type changeResult struct {
	Index uint64         `json:"index,omitempty"`
	Allow []netip.Prefix `json:"allow,omitempty"`
	Error *wireError     `json:"error,omitempty"`
}

// wireError is an error as the API would answer it (api.Error with its
// status), so that the origin answers exactly as the leader would have.
type wireError struct {
	Status   int      `json:"status"`
	Message  string   `json:"message"`
	Problems []string `json:"problems,omitempty"`
	Code     string   `json:"code,omitempty"`
}

func toWire(err error) *wireError {
	if err == nil {
		return nil
	}
	e := api.AsError(err)
	return &wireError{Status: e.Status, Message: e.Message, Problems: e.Problems, Code: e.Code}
}

func (w *wireError) err() error {
	if w == nil {
		return nil
	}
	return &api.Error{Status: w.Status, Message: w.Message, Problems: w.Problems, Code: w.Code}
}

// errNotLeaderHere: the node asked is not (or no longer) the leader;
// nothing was proposed, the origin looks for the leader again.
var errNotLeaderHere = errors.New("daemon: not the leader")

// proposeBatch proposes batch where the cluster's writes are made: on
// this node if it is the leader (or has a Local store), else forwarded to
// the leader, looking for it for at most leaderWait while nothing was
// proposed. Changes forwarded to this node are not forwarded again.
func (d *Daemon) proposeBatch(ctx context.Context, batch []*pendingChange) {
	ctl := d.control()
	deadline := time.Now().Add(leaderWait)
	var last error
	for {
		self, addr := true, ""
		if ctl != nil {
			self, addr = ctl.leader()
		}
		if self {
			d.proposeLocal(ctx, batch)
			return
		}
		var mine []*pendingChange
		for _, p := range batch {
			if p.forwarded {
				p.done <- proposed{err: errNotLeaderHere}
			} else {
				mine = append(mine, p)
			}
		}
		if batch = mine; len(batch) == 0 {
			return
		}
		if addr != "" {
			res, err := d.forward(ctx, ctl, addr, batch)
			if err == nil {
				for i, p := range batch {
					p.done <- proposed{index: res[i].Index, result: res[i].Allow, err: res[i].Error.err()}
				}
				return
			}
			if !errors.Is(err, errNotLeaderHere) && !isDialErr(err) {
				// Sent, but no answer: the outcome is unknown.
				err = fmt.Errorf("%w: leader at %s did not answer (the change may or may not be committed; re-read): %v", api.ErrNoLeader, addr, err)
				for _, p := range batch {
					p.done <- proposed{err: err}
				}
				return
			}
			last = err
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			err := fmt.Errorf("%w: no leader took the change within %s; nothing was written", api.ErrNoLeader, leaderWait)
			if last != nil {
				err = fmt.Errorf("%w (last try: %v)", err, last)
			}
			for _, p := range batch {
				p.done <- proposed{err: err}
			}
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// forward posts batch to the leader at addr and returns one result per
// change; errNotLeaderHere when that node is not the leader.
func (d *Daemon) forward(ctx context.Context, ctl clusterControl, addr string, batch []*pendingChange) ([]changeResult, error) {
	req := changesRequest{Changes: make([]Change, len(batch))}
	for i, p := range batch {
		req.Changes[i] = p.change
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	data, err := ctl.post(ctx, addr, pathChanges, body)
	if err != nil {
		return nil, err
	}
	var resp changesResponse
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, fmt.Errorf("daemon: answer of %s: %w", addr, err)
	}
	if resp.NotLeader {
		return nil, errNotLeaderHere
	}
	if len(resp.Results) != len(batch) {
		return nil, fmt.Errorf("daemon: %s answered %d results for %d changes", addr, len(resp.Results), len(batch))
	}
	return resp.Results, nil
}

// serveChanges takes runtime changes forwarded by another node: as the
// leader it proposes them with its own (one group commit); otherwise it
// says so and the origin looks for the leader again.
func (d *Daemon) serveChanges(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	var req changesRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxForwardBody))
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		http.Error(w, "forwarded changes: "+err.Error(), http.StatusBadRequest)
		return
	}
	ctl := d.control()
	if self := ctl != nil && d.isLeader(ctl); !self {
		_ = json.NewEncoder(w).Encode(changesResponse{NotLeader: true})
		return
	}
	out := d.proposeChanges(r.Context(), req.Changes, true)
	resp := changesResponse{Results: make([]changeResult, len(out))}
	for i, p := range out {
		if errors.Is(p.err, errNotLeaderHere) {
			// Leadership moved while the batch waited: nothing of it was
			// proposed here; the origin tries the new leader.
			_ = json.NewEncoder(w).Encode(changesResponse{NotLeader: true})
			return
		}
		resp.Results[i] = changeResult{Index: p.index, Allow: p.result, Error: toWire(p.err)}
	}
	_ = json.NewEncoder(w).Encode(resp)
}

func (d *Daemon) isLeader(ctl clusterControl) bool {
	self, _ := ctl.leader()
	return self
}

// isDialErr: the request never left this node (safe to retry).
func isDialErr(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// leader implements clusterControl.
func (r *raftControl) leader() (self bool, address string) {
	if r.n.IsLeader() {
		return true, ""
	}
	_, addr := r.n.Leader()
	return false, addr
}

// post implements clusterControl: body to path on the node at address,
// over the cluster's mutual TLS.
func (r *raftControl) post(ctx context.Context, address, path string, body []byte) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cluster.PeerURL(address, path), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.n.Client().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxForwardBody))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", address, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s: %s", address, resp.Status, bytes.TrimSpace(data))
	}
	return data, nil
}

// leader implements clusterControl: a Local store is its own leader.
func (l *localControl) leader() (bool, string) { return true, "" }

// post implements clusterControl: a Local store has no peers.
func (l *localControl) post(context.Context, string, string, []byte) ([]byte, error) {
	return nil, fmt.Errorf("daemon: this node has no cluster section")
}
