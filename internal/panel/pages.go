package panel

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/internal/events"
	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/kvs"
)

var funcs = template.FuncMap{
	"bytes": func(v any) string {
		switch n := v.(type) {
		case uint64:
			return human(float64(n), "B")
		case int64:
			return human(float64(n), "B")
		case int:
			return human(float64(n), "B")
		}
		return fmt.Sprint(v)
	},
	"pct": func(a, b uint64) string {
		if a+b == 0 {
			return "–"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(a)/float64(a+b))
	},
	"ago":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"rate": func(v float64) string { return human(v, "/s") },
}

// page is what every template gets.
type page struct {
	Title string
	// Refresh, if set, reloads the page every that many seconds (a meta
	// refresh: it works with JavaScript off).
	Refresh int
	Session *session
	Who     string
	CSRF    string
	Data    any
}

func (s *Server) render(w http.ResponseWriter, status int, name string, p page) {
	if p.Session != nil {
		p.CSRF, p.Who = p.Session.csrf, p.Session.who()
	}
	var b strings.Builder
	if err := s.tmpl.ExecuteTemplate(&b, name, p); err != nil {
		s.log.Error("panel: render", "template", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprint(w, b.String())
}

// errorPage is the clear page every error gets.
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	s.errorPageAs(w, r, nil, status, title, msg)
}

// errorPageAs is errorPage for a logged-in session (the page offers to log
// out).
func (s *Server) errorPageAs(w http.ResponseWriter, r *http.Request, sess *session, status int, title, msg string) {
	s.render(w, status, "error", page{Title: title, Session: sess, Data: struct {
		Status  int
		Message string
	}{status, msg}})
}

func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

type loginData struct {
	Message, Error, User string
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, msg, errMsg string) {
	tok := randomToken()
	setCookie(w, loginCookie, tok, 600)
	s.render(w, status, "login", page{Title: "Log in", CSRF: tok, Data: loginData{Message: msg, Error: errMsg, User: r.PostFormValue("user")}})
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.renderLogin(w, r, http.StatusOK, "", "")
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if ok, wait := s.limiter.allow(sourceOf(r)); !ok {
		w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds())+1))
		s.errorPage(w, r, http.StatusTooManyRequests, "Too many login attempts",
			fmt.Sprintf("Too many login attempts from %s. Try again in %d seconds.", sourceOf(r), int(wait.Seconds())+1))
		return
	}
	c, err := r.Cookie(loginCookie)
	if err != nil || !sameToken(r.PostFormValue("csrf"), c.Value) {
		s.renderLogin(w, r, http.StatusForbidden, "", "The login form expired (or cookies are off). Log in again from this page.")
		return
	}
	user, secret := strings.TrimSpace(r.PostFormValue("user")), strings.TrimSpace(r.PostFormValue("credential"))
	operator := user == ""
	if (!operator && !config.ValidName(user)) || secret == "" || !s.b.Login(user, secret) {
		s.log.Info("panel: login refused", "user", user, "source", sourceOf(r))
		s.renderLogin(w, r, http.StatusUnauthorized, "", "Wrong tenant name or credential.")
		return
	}
	sess := s.sessions.start(user, operator)
	setCookie(w, sessionCookie, sess.id, 0)
	setCookie(w, loginCookie, "", -1)
	s.log.Info("panel: login", "user", sess.who(), "source", sourceOf(r))
	http.Redirect(w, r, homeOf(sess), http.StatusSeeOther)
}

func homeOf(sess *session) string {
	if sess.operator {
		return "/operator"
	}
	return "/tenants/" + url.PathEscape(sess.tenant)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, sess *session) {
	s.sessions.end(sess.id)
	setCookie(w, sessionCookie, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (s *Server) home(w http.ResponseWriter, r *http.Request, sess *session) {
	http.Redirect(w, r, homeOf(sess), http.StatusSeeOther)
}

// tenantRow is a tenant with its cluster-wide counters, for the
// operator's list.
type tenantRow struct {
	api.Tenant
	Sum Summary
}

// nodeEvent is an event with the node it happened on.
type nodeEvent struct {
	events.Event
	Node string
}

// slotRow is one clustered tenant's slots on one node.
type slotRow struct {
	kvs.TenantClusterStatus
	From string // the storage node that reported it
}

func (s *Server) operator(w http.ResponseWriter, r *http.Request, sess *session) {
	if !sess.operator {
		s.errorPageAs(w, r, sess, http.StatusForbidden, "Operator only", "This page is the operator's; you are logged in as "+sess.who()+".")
		return
	}
	ts, err := s.b.Tenants(r.Context())
	if err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, "Tenants unavailable", err.Error())
		return
	}
	nodes := s.b.Cluster(r.Context())
	var self *api.Status
	var evs []nodeEvent
	var slots []slotRow
	for _, n := range nodes {
		if n.Self {
			self = n.Status
		}
		for _, e := range n.Events {
			evs = append(evs, nodeEvent{e, n.Name})
		}
		if n.KVS != nil && slots == nil {
			for _, t := range n.KVS.Tenants {
				slots = append(slots, slotRow{t, n.Name})
			}
		}
	}
	if self == nil {
		self = &api.Status{}
	}
	rows := make([]tenantRow, 0, len(ts))
	for _, t := range ts {
		rows = append(rows, tenantRow{Tenant: t, Sum: Summarize(membersOf(nodes, t.Name))})
	}
	slices.SortStableFunc(evs, func(a, b nodeEvent) int { return a.Time.Compare(b.Time) })
	evs = evs[max(0, len(evs)-50):]
	slices.Reverse(evs)
	s.render(w, http.StatusOK, "operator", page{Title: "Operator", Session: sess, Data: struct {
		Status  api.Status
		Nodes   []NodeView
		Slots   []slotRow
		Tenants []tenantRow
		Events  []nodeEvent
	}{*self, nodes, slots, rows, evs}})
}

// membersOf is a tenant's figures from the storage nodes' statuses.
func membersOf(nodes []NodeView, tenant string) []Member {
	var out []Member
	for _, n := range nodes {
		if n.Role != "storage" && n.Role != "both" {
			continue
		}
		m := Member{Node: n.Name, Error: n.Error}
		if n.Status != nil {
			for _, k := range n.Status.KVS {
				if k.Tenant == tenant {
					m.Stats = &k
				}
			}
		}
		if n.KVS != nil {
			for _, t := range n.KVS.Tenants {
				if t.Tenant != tenant {
					continue
				}
				for _, ns := range t.Nodes {
					if ns.Node == n.Name {
						m.Primaries, m.Backups = ns.Primaries, ns.Backups
					}
				}
			}
		}
		out = append(out, m)
	}
	return out
}

// Summary is a tenant's figures summed over the storage nodes.
type Summary struct {
	// Records and Bytes are the primaries' (replicas not counted again);
	// Estimated when a clustered tenant's are estimated (Member.Share).
	Records, Bytes uint64
	Estimated      bool
	// Memory is what the nodes hold, replicas included, against the sum
	// of their limits.
	Memory, Limit                            uint64
	Hits, Misses, Evictions, Conns, Commands uint64
	OpsPerSec                                float64
	// Nodes counts the nodes that reported the tenant; Missing names the
	// nodes that did not answer (their figures are not in the sums).
	Nodes   int
	Missing []string
}

// Summarize sums a tenant's figures over its storage nodes.
func Summarize(ms []Member) Summary {
	var sum Summary
	var records, bytes float64
	for _, m := range ms {
		if m.Error != "" {
			sum.Missing = append(sum.Missing, m.Node)
			continue
		}
		k := m.Stats
		if k == nil || k.Error != "" {
			continue
		}
		sh := m.Share()
		sum.Estimated = sum.Estimated || sh < 1
		sum.Nodes++
		records += float64(k.Items) * sh
		bytes += float64(k.Bytes) * sh
		sum.Memory += k.Bytes
		sum.Limit += k.LimitBytes
		sum.Hits += k.Hits
		sum.Misses += k.Misses
		sum.Evictions += k.Evictions
		sum.Conns += k.CurrConns
		sum.Commands += k.Commands
		sum.OpsPerSec += k.OpsPerSec
	}
	sum.Records, sum.Bytes = uint64(records+0.5), uint64(bytes+0.5)
	return sum
}

// ranges are the spans a tenant page offers.
var ranges = []struct {
	Name string
	D    time.Duration
}{{"15m", 15 * time.Minute}, {"1h", time.Hour}, {"6h", 6 * time.Hour}, {"24h", 24 * time.Hour}, {"3d", 72 * time.Hour}}

func rangeOf(r *http.Request) (string, time.Duration) {
	q := r.URL.Query().Get("range")
	for _, x := range ranges {
		if x.Name == q {
			return x.Name, x.D
		}
	}
	return "6h", 6 * time.Hour
}

// findTenant returns the tenant named in the path.
func (s *Server) findTenant(w http.ResponseWriter, r *http.Request) (api.Tenant, bool) {
	name := r.PathValue("tenant")
	ts, err := s.b.Tenants(r.Context())
	if err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, "Tenants unavailable", err.Error())
		return api.Tenant{}, false
	}
	i := slices.IndexFunc(ts, func(t api.Tenant) bool { return t.Name == name })
	if i < 0 {
		s.errorPage(w, r, http.StatusNotFound, "No such tenant", "There is no tenant "+name+".")
		return api.Tenant{}, false
	}
	return ts[i], true
}

func (s *Server) tenantPage(w http.ResponseWriter, r *http.Request, sess *session) {
	t, ok := s.findTenant(w, r)
	if !ok {
		return
	}
	rng, _ := rangeOf(r)
	members := s.b.Figures(r.Context(), t.Name)
	type graph struct{ Name, Title, URL string }
	var gs []graph
	for _, m := range metrics {
		gs = append(gs, graph{m.Name, m.Title, fmt.Sprintf("/tenants/%s/graph/%s?range=%s", url.PathEscape(t.Name), m.Name, rng)})
	}
	s.render(w, http.StatusOK, "tenant", page{Title: "Tenant " + t.Name, Session: sess, Data: struct {
		Tenant  api.Tenant
		Stats   Summary
		Members []Member
		Range   string
		Ranges  any
		Graphs  []graph
	}{t, Summarize(members), members, rng, ranges, gs}})
}

func (s *Server) graph(w http.ResponseWriter, r *http.Request, sess *session) {
	m, ok := metricByName(r.PathValue("metric"))
	if !ok {
		s.errorPage(w, r, http.StatusNotFound, "No such graph", "There is no graph "+r.PathValue("metric")+".")
		return
	}
	if _, ok := s.findTenant(w, r); !ok {
		return
	}
	_, d := rangeOf(r)
	pts, missing, now := s.history(r.Context(), r.PathValue("tenant"), d)
	svg := renderSVG(m, pts, missing, now.Add(-d), now)
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(svg)
}

func (s *Server) seriesJSON(w http.ResponseWriter, r *http.Request, sess *session) {
	_, d := rangeOf(r)
	pts, missing, _ := s.history(r.Context(), r.PathValue("tenant"), d)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"tenant": r.PathValue("tenant"), "points": pts, "missing": missing})
}

// keysPerPage is the size of a key listing page.
const keysPerPage = 50

type keyRow struct {
	Key, Expires string
	Size         int
	Flags        uint32
}

func (s *Server) keys(w http.ResponseWriter, r *http.Request, sess *session) {
	t, ok := s.findTenant(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	prefix, cursor := q.Get("prefix"), q.Get("cursor")
	if len(prefix) > kvs.KeyMaxLength {
		s.errorPage(w, r, http.StatusBadRequest, "Prefix too long", fmt.Sprintf("A key is at most %d bytes; so is a prefix.", kvs.KeyMaxLength))
		return
	}
	pg, err := s.b.Keys(r.Context(), t.Name, cursor, prefix, keysPerPage)
	if err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "Cannot list keys", err.Error())
		return
	}
	now := s.now().Unix()
	rows := make([]keyRow, 0, len(pg.Keys))
	for _, k := range pg.Keys {
		exp := "never"
		if k.Exptime != 0 {
			exp = fmt.Sprintf("in %s (%s)", time.Duration(k.Exptime-now)*time.Second, time.Unix(k.Exptime, 0).UTC().Format("Jan 2 15:04:05"))
		}
		rows = append(rows, keyRow{Key: string(k.Key), Size: k.Size, Flags: k.Flags, Expires: exp})
	}
	next := ""
	if pg.Next != "" {
		next = fmt.Sprintf("/tenants/%s/keys?%s", url.PathEscape(t.Name), url.Values{"prefix": {prefix}, "cursor": {pg.Next}}.Encode())
	}
	s.render(w, http.StatusOK, "keys", page{Title: "Keys of " + t.Name, Session: sess, Data: struct {
		Tenant       api.Tenant
		Prefix, Next string
		Continued    bool
		Keys         []keyRow
	}{t, prefix, next, cursor != "", rows}})
}

type allowData struct {
	Tenant   api.Tenant
	Text     string
	Error    string
	Confirm  bool // ask to confirm an entry admitting everybody
	Everyone []string
	// Of a change just made: when, its index in the cluster state, each
	// director's progress, whether all applied it, and the page's refresh
	// interval in seconds while they have not.
	Applied   string
	Index     uint64
	Directors []api.NodeApplied
	All       bool
	Refresh   int
}

func (s *Server) allowPage(w http.ResponseWriter, r *http.Request, sess *session) {
	t, ok := s.findTenant(w, r)
	if !ok {
		return
	}
	data := allowData{Tenant: t, Text: prefixLines(t.Allow)}
	s.allowChange(r, &data)
	s.render(w, http.StatusOK, "allow", page{Title: "Allow-list of " + t.Name, Session: sess, Refresh: data.Refresh, Data: data})
}

func prefixLines(ps []netip.Prefix) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.String() + "\n")
	}
	return b.String()
}

// maxAllowEntries bounds an allow-list sent from the form.
const maxAllowEntries = 10000

func (s *Server) setAllow(w http.ResponseWriter, r *http.Request, sess *session) {
	t, ok := s.findTenant(w, r)
	if !ok {
		return
	}
	text := r.PostFormValue("allow")
	data := allowData{Tenant: t, Text: text}
	fail := func(status int, msg string) {
		data.Error = msg
		s.render(w, status, "allow", page{Title: "Allow-list of " + t.Name, Session: sess, Data: data})
	}
	entries := strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
	if len(entries) > maxAllowEntries {
		fail(http.StatusBadRequest, fmt.Sprintf("%d entries: at most %d.", len(entries), maxAllowEntries))
		return
	}
	allow, err := config.ParseAllow(entries)
	if err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	for _, p := range allow {
		if config.AdmitsAnybody(p) {
			data.Everyone = append(data.Everyone, p.String())
		}
	}
	if len(data.Everyone) > 0 && r.PostFormValue("confirm_everybody") != "yes" {
		data.Confirm = true
		fail(http.StatusConflict, "The list admits (nearly) everybody ("+strings.Join(data.Everyone, ", ")+"): anyone on the internet could reach this tenant's store. Tick the confirmation to save it anyway.")
		return
	}
	got, index, err := s.b.SetAllow(r.Context(), t.Name, allow)
	if err != nil {
		fail(http.StatusBadRequest, "Not applied: "+err.Error())
		return
	}
	if len(data.Everyone) > 0 {
		s.log.Warn("panel: allow-list admits (nearly) everybody, confirmed", "tenant", t.Name, "by", sess.who(), "entries", data.Everyone)
	}
	s.log.Info("panel: allow-list changed", "tenant", t.Name, "by", sess.who(), "entries", len(got), "index", index)
	// The page of the change: it follows the directors until every one
	// has applied it (Post/Redirect/Get: a reload does not post again).
	q := url.Values{"index": {fmt.Sprint(index)}, "at": {fmt.Sprint(s.now().Unix())}}
	http.Redirect(w, r, fmt.Sprintf("/tenants/%s/allow?%s", url.PathEscape(t.Name), q.Encode()), http.StatusSeeOther)
}

// appliedRefresh is how often the page of a change refreshes until every
// director applied it.
const appliedRefresh = 2

// allowChange fills data with the progress of the change at index (the
// query of the page a change redirects to), and says whether the page
// should refresh.
func (s *Server) allowChange(r *http.Request, data *allowData) {
	index, err := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	if err != nil || index == 0 {
		return
	}
	at, _ := strconv.ParseInt(r.URL.Query().Get("at"), 10, 64)
	data.Applied = time.Unix(at, 0).UTC().Format("15:04:05 UTC")
	data.Index = index
	data.Directors = s.b.Directors(r.Context(), index)
	data.All = true
	for _, d := range data.Directors {
		data.All = data.All && d.Applied
	}
	if len(data.Directors) > 0 && !data.All {
		data.Refresh = appliedRefresh
	}
}
