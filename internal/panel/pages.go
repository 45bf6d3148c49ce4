package panel

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
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
	Title   string
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

// tenantRow is a tenant with its counters, for the operator's list.
type tenantRow struct {
	api.Tenant
	Stats api.KVSStats
}

func (s *Server) operator(w http.ResponseWriter, r *http.Request, sess *session) {
	if !sess.operator {
		s.errorPageAs(w, r, sess, http.StatusForbidden, "Operator only", "This page is the operator's; you are logged in as "+sess.who()+".")
		return
	}
	st, err := s.b.Status(r.Context())
	if err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, "Status unavailable", err.Error())
		return
	}
	ts, err := s.b.Tenants(r.Context())
	if err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, "Tenants unavailable", err.Error())
		return
	}
	stats, _ := s.b.KVSStats(r.Context(), "")
	rows := make([]tenantRow, 0, len(ts))
	for _, t := range ts {
		row := tenantRow{Tenant: t}
		for _, k := range stats {
			if k.Tenant == t.Name {
				row.Stats = k
			}
		}
		rows = append(rows, row)
	}
	evs := s.b.Events()
	evs = evs[max(0, len(evs)-50):]
	slices.Reverse(evs)
	s.render(w, http.StatusOK, "operator", page{Title: "Operator", Session: sess, Data: struct {
		Status  api.Status
		Nodes   []Node
		Tenants []tenantRow
		Events  []events.Event
	}{st, s.b.Nodes(), rows, evs}})
}

// ranges are the spans a tenant page offers.
var ranges = []struct {
	Name string
	D    time.Duration
}{{"1h", time.Hour}, {"6h", 6 * time.Hour}, {"24h", 24 * time.Hour}, {"3d", 72 * time.Hour}}

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
	stats, _ := s.b.KVSStats(r.Context(), t.Name)
	var sum api.KVSStats
	for _, k := range stats {
		sum.Items += k.Items
		sum.Bytes += k.Bytes
		sum.LimitBytes += k.LimitBytes
		sum.Hits += k.Hits
		sum.Misses += k.Misses
		sum.Evictions += k.Evictions
		sum.CurrConns += k.CurrConns
		sum.OpsPerSec += k.OpsPerSec
	}
	type graph struct{ Name, Title, URL string }
	var gs []graph
	for _, m := range metrics {
		gs = append(gs, graph{m.Name, m.Title, fmt.Sprintf("/tenants/%s/graph/%s?range=%s", url.PathEscape(t.Name), m.Name, rng)})
	}
	s.render(w, http.StatusOK, "tenant", page{Title: "Tenant " + t.Name, Session: sess, Data: struct {
		Tenant api.Tenant
		Stats  api.KVSStats
		Nodes  int
		Range  string
		Ranges any
		Graphs []graph
	}{t, sum, len(stats), rng, ranges, gs}})
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
	now := s.now()
	from := now.Add(-d)
	svg := renderSVG(m, s.b.History(r.PathValue("tenant"), from), from, now)
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(svg)
}

func (s *Server) seriesJSON(w http.ResponseWriter, r *http.Request, sess *session) {
	_, d := rangeOf(r)
	pts := s.b.History(r.PathValue("tenant"), s.now().Add(-d))
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"tenant": r.PathValue("tenant"), "points": pts})
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
	pg, err := s.b.Keys(t.Name, cursor, prefix, keysPerPage)
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
	Applied  string
	Everyone []string
}

func (s *Server) allowPage(w http.ResponseWriter, r *http.Request, sess *session) {
	t, ok := s.findTenant(w, r)
	if !ok {
		return
	}
	s.render(w, http.StatusOK, "allow", page{Title: "Allow-list of " + t.Name, Session: sess, Data: allowData{Tenant: t, Text: prefixLines(t.Allow)}})
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
	got, err := s.b.SetAllow(r.Context(), t.Name, allow)
	if err != nil {
		fail(http.StatusBadRequest, "Not applied: "+err.Error())
		return
	}
	t.Allow = got
	if len(data.Everyone) > 0 {
		s.log.Warn("panel: allow-list admits (nearly) everybody, confirmed", "tenant", t.Name, "by", sess.who(), "entries", data.Everyone)
	}
	s.log.Info("panel: allow-list changed", "tenant", t.Name, "by", sess.who(), "entries", len(got))
	s.render(w, http.StatusOK, "allow", page{Title: "Allow-list of " + t.Name, Session: sess, Data: allowData{Tenant: t, Text: prefixLines(got),
		Applied: s.now().UTC().Format("15:04:05 UTC")}})
}
