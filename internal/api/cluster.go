package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrNoLeader: the cluster has no leader (no quorum answers), so a write
// cannot be committed; nothing was written (503, code "no_leader").
var ErrNoLeader = errors.New("no cluster leader")

// Headers of the replicated state.
const (
	// HeaderIndex, on a write's answer, is the index the write was
	// committed at: ask WaitApplied which nodes have applied it.
	HeaderIndex = "Lbd-Index"
	// HeaderApplied, HeaderLeader and HeaderLastContact, on a read's
	// answer, say how fresh it is.
	HeaderApplied     = "Lbd-Applied-Index"
	HeaderLeader      = "Lbd-Leader"
	HeaderLastContact = "Lbd-Last-Contact"
)

// ClusterBackend is what a backend that reads its desired state from a
// replicated store offers beyond Backend.
type ClusterBackend interface {
	// ClusterStatus is the cluster as this node sees it.
	ClusterStatus(ctx context.Context) (ClusterStatus, error)
	// Freshness is how fresh this node's reads are (no network call).
	Freshness() Freshness
	// WaitApplied reports which members have reconciled index; with all,
	// it waits (until ctx is done) for every member to have.
	WaitApplied(ctx context.Context, index uint64, all bool) (AppliedReport, error)
	// JoinMember adds a node to the cluster.
	JoinMember(ctx context.Context, req JoinRequest) error
	// RemoveMember removes a node from the cluster.
	RemoveMember(ctx context.Context, name string) error
}

// Freshness is how fresh a node's view of the replicated state is.
type Freshness struct {
	AppliedIndex uint64 `json:"applied_index"`
	Leader       string `json:"leader"`
	// LastContact is how long ago this node heard from the leader (0 on
	// the leader itself; -1 never).
	LastContact time.Duration `json:"last_contact"`
}

// ClusterStatus is the replicated state as one node sees it.
type ClusterStatus struct {
	// Mode is "local" (no cluster section: this node is its own store) or
	// "raft".
	Mode string `json:"mode"`
	Node string `json:"node"`
	// Leader is the leader's name ("" while there is none).
	Leader string `json:"leader"`
	Term   uint64 `json:"term,omitempty"`
	// AppliedIndex is the last write applied to this node's store;
	// ReconciledIndex the last whose desired state this node's kernel
	// and KVS were brought in step with.
	AppliedIndex    uint64        `json:"applied_index"`
	ReconciledIndex uint64        `json:"reconciled_index"`
	LastContact     time.Duration `json:"last_contact"`
	// CaughtUp: this node has applied what the leader had committed when
	// it started (a director runs VRRP only then, or after the timeout).
	CaughtUp bool `json:"caught_up"`
	// Stale says why this node serves its last applied state without
	// having caught up (no quorum answered in time), if it does.
	Stale   string          `json:"stale,omitempty"`
	Members []ClusterMember `json:"members"`
	// Survives says plainly which failures the cluster survives.
	Survives string `json:"survives"`
}

// ClusterMember is one node of the cluster.
type ClusterMember struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
	// State is leader, follower, candidate or unreachable.
	State           string        `json:"state"`
	LastContact     time.Duration `json:"last_contact"`
	AppliedIndex    uint64        `json:"applied_index"`
	ReconciledIndex uint64        `json:"reconciled_index"`
	// SnapshotsInstalled counts the snapshots the member caught up from
	// since it started.
	SnapshotsInstalled uint64 `json:"snapshots_installed,omitempty"`
	Error              string `json:"error,omitempty"`
}

// AppliedReport tells which members have reconciled a write's index.
type AppliedReport struct {
	Index uint64        `json:"index"`
	Nodes []NodeApplied `json:"nodes"`
	// All is true when every member has.
	All bool `json:"all"`
}

// NodeApplied is one member's progress.
type NodeApplied struct {
	Name            string `json:"name"`
	ReconciledIndex uint64 `json:"reconciled_index"`
	Applied         bool   `json:"applied"`
	Error           string `json:"error,omitempty"`
}

// JoinRequest adds a node to the cluster.
type JoinRequest struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
}

// receiptKey carries a write's *atomic.Uint64 index in its context.
type receiptKey struct{}

// WithReceipt returns a context in which a write notes its index
// (NoteIndex), and the function that reads it (0: no write noted): for
// callers outside the API, such as the panel.
func WithReceipt(ctx context.Context) (context.Context, func() uint64) {
	idx := new(atomic.Uint64)
	return context.WithValue(ctx, receiptKey{}, idx), idx.Load
}

// NoteIndex records, for the API answer, the index a write was committed
// at. Backends call it; it does nothing outside an API request.
func NoteIndex(ctx context.Context, index uint64) {
	if r, ok := ctx.Value(receiptKey{}).(*atomic.Uint64); ok {
		r.Store(index)
	}
}

// indexWriter sets the index header before the status line goes out.
type indexWriter struct {
	http.ResponseWriter
	idx   *atomic.Uint64
	wrote bool
}

func (w *indexWriter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		if i := w.idx.Load(); i > 0 {
			w.Header().Set(HeaderIndex, strconv.FormatUint(i, 10))
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *indexWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets the event stream through.
func (w *indexWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// clusterHeaders tags writes with their index and reads with their
// freshness, when the backend is a ClusterBackend.
func (s *Server) clusterHeaders(next http.Handler) http.Handler {
	cb, ok := s.backend.(ClusterBackend)
	if !ok {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			f := cb.Freshness()
			h := w.Header()
			h.Set(HeaderApplied, strconv.FormatUint(f.AppliedIndex, 10))
			h.Set(HeaderLeader, f.Leader)
			h.Set(HeaderLastContact, f.LastContact.String())
			next.ServeHTTP(w, r)
			return
		}
		idx := new(atomic.Uint64)
		r = r.WithContext(context.WithValue(r.Context(), receiptKey{}, idx))
		next.ServeHTTP(&indexWriter{ResponseWriter: w, idx: idx}, r)
	})
}

// clusterBackend returns the backend as a ClusterBackend, or answers 404.
func (s *Server) clusterBackend(w http.ResponseWriter) (ClusterBackend, bool) {
	cb, ok := s.backend.(ClusterBackend)
	if !ok {
		writeError(w, &Error{Status: http.StatusNotFound, Message: "this lbd has no cluster state"})
	}
	return cb, ok
}

func (s *Server) clusterStatus(w http.ResponseWriter, r *http.Request) {
	cb, ok := s.clusterBackend(w)
	if !ok {
		return
	}
	st, err := cb.ClusterStatus(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, st)
}

// waitApplied answers GET /v1/cluster/applied?index=N[&wait=DURATION].
func (s *Server) waitApplied(w http.ResponseWriter, r *http.Request) {
	cb, ok := s.clusterBackend(w)
	if !ok {
		return
	}
	q := r.URL.Query()
	idx, err := strconv.ParseUint(q.Get("index"), 10, 64)
	if err != nil {
		writeError(w, invalidf("index %q: want a write's index", q.Get("index")))
		return
	}
	ctx := r.Context()
	all := false
	if ws := q.Get("wait"); ws != "" {
		d, err := time.ParseDuration(ws)
		if err != nil || d < 0 || d > time.Hour {
			writeError(w, invalidf("wait %q: want a duration up to 1h", ws))
			return
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
		all = true
	}
	rep, err := cb.WaitApplied(ctx, idx, all)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, rep)
}

func (s *Server) joinMember(w http.ResponseWriter, r *http.Request) {
	cb, ok := s.clusterBackend(w)
	if !ok {
		return
	}
	var req JoinRequest
	if err := decodeJSON(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.Name == "" || req.Address == "" {
		writeError(w, invalidf("join: name and address are required"))
		return
	}
	if err := cb.JoinMember(r.Context(), req); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, OK{OK: true})
}

func (s *Server) removeMember(w http.ResponseWriter, r *http.Request) {
	cb, ok := s.clusterBackend(w)
	if !ok {
		return
	}
	if err := cb.RemoveMember(r.Context(), r.PathValue("name")); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, OK{OK: true})
}

// ClusterStatus fetches the cluster's status as the node sees it.
func (c *Client) ClusterStatus(ctx context.Context) (ClusterStatus, error) {
	return get[ClusterStatus](ctx, c, "/v1/cluster/status")
}

// WaitApplied reports which members have applied index; a wait > 0 blocks
// until all have or wait has passed.
func (c *Client) WaitApplied(ctx context.Context, index uint64, wait time.Duration) (AppliedReport, error) {
	path := fmt.Sprintf("/v1/cluster/applied?index=%d", index)
	if wait > 0 {
		path += "&wait=" + url.QueryEscape(wait.String())
	}
	return get[AppliedReport](ctx, c, path)
}

// JoinMember adds a node to the cluster.
func (c *Client) JoinMember(ctx context.Context, req JoinRequest) error {
	return c.sendJSON(ctx, http.MethodPost, "/v1/cluster/members", req, &OK{})
}

// RemoveMember removes a node from the cluster.
func (c *Client) RemoveMember(ctx context.Context, name string) error {
	return c.del(ctx, "/v1/cluster/members/"+url.PathEscape(name))
}

// Meta is what an answer said about the replicated state: a write's
// index, a read's freshness. Zero where the answer said nothing.
type Meta struct {
	Index uint64
	Freshness
	// Known is true when the answer carried freshness headers.
	Known bool
}

// LastMeta returns the Meta of the client's last answer.
func (c *Client) LastMeta() Meta {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.meta
}

func (c *Client) noteMeta(h http.Header) {
	var m Meta
	m.Index, _ = strconv.ParseUint(h.Get(HeaderIndex), 10, 64)
	if a := h.Get(HeaderApplied); a != "" {
		m.Known = true
		m.AppliedIndex, _ = strconv.ParseUint(a, 10, 64)
		m.Leader = h.Get(HeaderLeader)
		m.LastContact, _ = time.ParseDuration(h.Get(HeaderLastContact))
	}
	c.mu.Lock()
	c.meta = m
	c.mu.Unlock()
}

// clusterCollector exports where the node is in the replicated state.
type clusterCollector struct {
	b                                           Backend
	cb                                          ClusterBackend
	applied, reconciled, caughtUp, stale, known *prometheus.Desc
}

func newClusterCollector(b Backend, cb ClusterBackend) *clusterCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("lbd_cluster_"+name, help, nil, nil)
	}
	return &clusterCollector{
		b: b, cb: cb,
		applied:    d("applied_index", "Index of the last write of the cluster state applied on this node."),
		reconciled: d("reconciled_index", "Index of the last cluster state this node's kernel and KVS were brought in step with."),
		caughtUp:   d("caught_up", "1 once this node has caught up with the committed state since it started."),
		stale:      d("serving_last_state", "1 while this node serves its last applied state because no quorum answered within catchup_timeout."),
		known:      d("leader_known", "1 if this node knows a leader."),
	}
}

// Describe implements prometheus.Collector.
func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.applied, c.reconciled, c.caughtUp, c.stale, c.known} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	st, err := c.b.Status(ctx)
	if err != nil || st.Cluster == nil {
		return
	}
	g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	g(c.applied, float64(st.Cluster.AppliedIndex))
	g(c.reconciled, float64(st.Cluster.ReconciledIndex))
	g(c.caughtUp, b(st.Cluster.CaughtUp))
	g(c.stale, b(st.Cluster.Stale != ""))
	g(c.known, b(st.Cluster.Leader != ""))
}
